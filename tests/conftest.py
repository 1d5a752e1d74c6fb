"""Shared fixtures: the real shipped content, loaded once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from coach.config import Settings
from coach.content import Content, load_content
from llm_double import LLMDouble
from llm_script import ScriptedLLM
from pg_database import fresh_postgres_database

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO_ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(Settings(llm_base_url=None, llm_api_key=None))


@pytest.fixture()
def offline_settings(tmp_path: Path) -> Settings:
    """Settings with no LLM and a throwaway data folder."""
    return Settings(llm_base_url=None, llm_api_key=None, data_dir=tmp_path / "data")


POSTGRES_URL_ENV = "COACH_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_test_database() -> Iterator[str]:
    """A fresh, uniquely named database for this test run, dropped at the end.

    Several test runs share one PostgreSQL server, so the name is random and nothing else on
    the server is touched.
    """
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(
            f"{POSTGRES_URL_ENV} is not set; scripts/test.sh sets it when PostgreSQL answers "
            "on 127.0.0.1:5432"
        )
    with fresh_postgres_database(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on each backend; PostgreSQL only when configured."""
    return empty_database(request, request.param, tmp_path / "db")


def empty_database(request: pytest.FixtureRequest, kind: str, folder: Path) -> str:
    """A URL to an empty database: a new SQLite file in `folder`, or this run's PostgreSQL
    database with whatever an earlier test left behind dropped."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'coach.db'}"
    url: str = request.getfixturevalue("postgres_test_database")
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def llm_double_server() -> Iterator[LLMDouble]:
    """One OpenAI-protocol test double for the whole run (tests script it per test)."""
    with LLMDouble() as double:
        yield double


@pytest.fixture()
def llm(llm_double_server: LLMDouble) -> LLMDouble:
    """The shared double with no script and no recorded requests left from earlier tests."""
    llm_double_server.reset()
    return llm_double_server


@pytest.fixture()
def scripted(llm: LLMDouble, content: Content) -> ScriptedLLM:
    """The shared double answering like a sensible LLM: grades quote the candidate's text."""
    responder = ScriptedLLM(content)
    llm.default = responder
    return responder
