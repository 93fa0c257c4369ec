"""The processes and roles in ``GET /v1/status`` (inftd/daemon/process/cluster.py): every
``inftd run`` process with a heartbeat row, and who holds each role."""

from __future__ import annotations

from inftd.daemon.config import ROLES
from inftd.daemon.server.openapi.parts import COUNT, STRING, TIME, Schema, nullable, obj, ref
from inftd.daemon.server.openapi.section import Section

STRINGS: Schema = {"type": "array", "items": STRING}
ROLE_NAMES: Schema = {"type": "array", "items": {"enum": list(ROLES)}}


def _schemas() -> dict[str, Schema]:
    return {
        "ThisProcess": obj({"id": STRING, "roles": ROLE_NAMES}),
        "DaemonProcess": obj(
            {
                "id": {"type": "string", "description": "host:pid:random"},
                "host": STRING,
                "pid": COUNT,
                "roles": ROLE_NAMES,
                "version": STRING,
                "startedAt": TIME,
                "heartbeatAt": TIME,
                "ageSeconds": {"type": "number", "minimum": 0},
                "alive": {
                    "type": "boolean",
                    "description": "its last heartbeat is within 3 of its intervals",
                },
                "facts": {
                    "type": "object",
                    "description": "per role: state (leader, standby, off), jobsRunning, "
                    "signer, inFlight, halted, failing",
                    "additionalProperties": {"type": "object"},
                },
            }
        ),
        "Roles": obj(
            {
                "indexer": obj(
                    {
                        "leader": nullable(STRING),
                        "standbys": STRINGS,
                        "halted": nullable(STRING),
                        "failing": nullable(STRING),
                    }
                ),
                "worker": obj({"alive": STRINGS, "jobsRunning": COUNT}),
                "relayer": obj(
                    {
                        "signers": {
                            "type": "object",
                            "description": "by minter address",
                            "additionalProperties": ref("RelayerSigner"),
                        }
                    }
                ),
                "api": obj({"alive": STRINGS}),
            }
        ),
        "RelayerSigner": obj(
            {"leader": nullable(STRING), "standbys": STRINGS, "inFlight": nullable(COUNT)}
        ),
    }


def section() -> Section:
    return Section(tags={}, paths={}, schemas=_schemas())
