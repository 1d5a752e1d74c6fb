"""Shared fixtures: the real shipped content, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.config import Settings
from coach.content import Content, load_content

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO_ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(Settings(llm_base_url=None, llm_api_key=None))


@pytest.fixture()
def offline_settings(tmp_path: Path) -> Settings:
    """Settings with no LLM and a throwaway data folder."""
    return Settings(llm_base_url=None, llm_api_key=None, data_dir=tmp_path / "data")
