"""What is left of the social section: the WebSocket message command and its answer, which
the base section's WsCommand and WsServerMessage still name. The social and analytics
routes are declared at their handlers (inftd/daemon/server/api/social.py and
api/analytics.py)."""

from __future__ import annotations

from inftd.daemon.server.openapi.parts import COUNT, STRING, TIME, Schema, nullable, obj
from inftd.daemon.server.openapi.section import Section


def _schemas() -> dict[str, Schema]:
    message = obj(
        {
            "id": COUNT,
            "from": COUNT,
            "to": COUNT,
            "kind": STRING,
            "body": {"type": "object", "description": 'A text message is {"text": ...}'},
            "createdAt": nullable(TIME),
            "readAt": nullable(TIME),
        }
    )
    return {
        "WsMessageCommand": obj(
            {
                "type": {"const": "message"},
                "tokenId": {**COUNT, "description": "The sender, owned by the socket's sign-in"},
                "to": COUNT,
                "kind": STRING,
                "text": STRING,
                "body": {"type": "object"},
            },
            "kind",
            "text",
            "body",
        ),
        "WsMessageSent": obj({"type": {"const": "messageSent"}, "message": message}),
    }


def section() -> Section:
    """The WebSocket message frames."""
    return Section(tags={}, paths={}, schemas=_schemas())
