"""One part of the OpenAPI document: the routes of one area and the components they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Section:
    tags: dict[str, str]  # tag name -> description
    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
