"""Runtime: config, CLI, dev chain, deployment, the aiohttp server, and (later) the scheduler,
generation pipeline and relayer."""

from inftd.daemon.errors import ConfigError, DaemonError

__all__ = ["ConfigError", "DaemonError"]
