"""Questions, rubrics and prompts: data files loaded into validated pydantic models."""

from coach.content.loader import Content, load_content
from coach.content.models import MISTAKE_IDS, PHASE_IDS, MistakeId, PhaseId

__all__ = ["MISTAKE_IDS", "PHASE_IDS", "Content", "MistakeId", "PhaseId", "load_content"]
