"""The daemon, in rooms: ``cli/`` (the commands), ``server/`` (the aiohttp API), ``auth/``
(sign-in tokens, SIWE), ``process/`` (roles, leadership, heartbeats), ``events/`` (the hub
and push webhooks), ``generation/`` (the job runtime, ``routing/``, ``strategies/``),
``providers/`` and ``relayer/``; beside them ``config``, ``errors``, ``logs`` and
``runtime`` (the resources a process opens once)."""

from inftd.daemon.errors import ConfigError, DaemonError

__all__ = ["ConfigError", "DaemonError"]
