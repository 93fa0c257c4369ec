"""What is left of the learning section: the generation id parameter, which the generations
section still names. The learning routes are declared at their handlers
(inftd/daemon/server/api/learning.py)."""

from __future__ import annotations

from inftd.agents import learning
from inftd.daemon.server.openapi.section import Section


def section() -> Section:
    """The ``LearningGenerationId`` parameter."""
    generation_id = {
        "name": "generation_id",
        "in": "path",
        "required": True,
        "description": "The generation's id",
        "schema": {
            "type": "string",
            "pattern": f"^[A-Za-z0-9_-]{{1,{learning.MAX_ID_CHARS}}}$",
            "examples": ["0b6f3c9e-8d2a-4f4e-9a51-3c2d1e0f9a77"],
        },
    }
    return Section(tags={}, paths={}, parameters={"LearningGenerationId": generation_id})
