"""The ``inftd`` command line: dev, deploy, migrate, backfill, run, status.

Every failure ends in one line on stderr, ``inftd: error: ...``, naming the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy.exc

from inftd import __version__
from inftd.daemon.cli.datalock import data_dir_held
from inftd.daemon.config import Settings, parse_roles
from inftd.daemon.errors import ConfigError, DaemonError
from inftd.daemon.logs import setup_logging
from inftd.indexer.errors import IndexerError
from inftd.store.db import is_sqlite
from inftd.store.errors import StoreError

EXIT_ERROR = 1
EXIT_CONFIG = 2


def say(line: str) -> None:
    print(line, flush=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (env: INFTD_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data folder (env: INFTD_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inftd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"inftd {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on a failure, the traceback after its line"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run Anvil, deploy, migrate and serve, all locally")
    _common(dev)
    dev.add_argument("--api-port", type=int, help="API port (0 takes a free one)")

    deploy = commands.add_parser(
        "deploy", help="deploy the contracts; the key comes from INFTD_DEPLOYER_KEY"
    )
    _common(deploy)
    deploy.add_argument("--rpc-url", required=True, help="JSON-RPC URL of the chain")
    deploy.add_argument("--out", type=Path, help="deployment file to write")
    deploy.add_argument("--minter", help="address given the minter role (default: deployer)")
    deploy.add_argument("--operator", help="address given the operator role (default: deployer)")

    migrate_cmd = commands.add_parser("migrate", help="bring the database to the latest revision")
    _common(migrate_cmd)
    migrate_cmd.add_argument("--database-url", help="database URL (env: INFTD_DATABASE_URL)")
    migrate_cmd.add_argument("--revision", default="head", help="target revision (default: head)")

    backfill = commands.add_parser("backfill", help="index the chain up to a block, then exit")
    _common(backfill)
    backfill.add_argument("--from-block", type=int, help="first block (fresh databases only)")
    backfill.add_argument("--to-block", type=int, help="last block (default: the head)")

    run = commands.add_parser("run", help="run the daemon against the configured chain")
    _common(run)
    run.add_argument("--api-port", type=int, help="API port (0 takes a free one)")
    run.add_argument(
        "--role",
        help="roles of this process, comma-separated: all (default), indexer, worker, "
        "relayer, api (env: INFTD_DAEMON__ROLES); split roles need PostgreSQL",
    )

    status_cmd = commands.add_parser(
        "status", help="health of every process and role, read from the database"
    )
    _common(status_cmd)
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    config = args.config or (
        Path(os.environ["INFTD_CONFIG"]) if "INFTD_CONFIG" in os.environ else None
    )
    settings = Settings.load(config, data_dir=args.data_dir, **overrides)
    setup_logging(settings.log_level, settings.log_format, settings.secret_values())
    return settings


def _api_override(args: argparse.Namespace) -> dict[str, Any]:
    return {"api": {"port": args.api_port}} if args.api_port is not None else {}


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)``; SIGINT and SIGTERM only set ``stop``, so shutdown is orderly."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def cmd_dev(args: argparse.Namespace) -> None:
    from inftd.daemon.cli.dev import dev_settings, run_dev

    settings = load_settings(args, **_api_override(args))
    with data_dir_held(settings.data_dir, alone=True):  # its chain and database live there
        settings = dev_settings(settings)
        setup_logging(settings.log_level, settings.log_format, settings.secret_values())
        run_until_signal(lambda stop: run_dev(settings, stop, say))


def cmd_deploy(args: argparse.Namespace) -> None:
    from inftd.daemon.cli.deploy import account_from_key, deploy_contracts

    settings = load_settings(args)
    if settings.deployer_key is None:
        raise ConfigError("deployer_key", "set INFTD_DEPLOYER_KEY to the deployer's private key")
    deployer = account_from_key(settings.deployer_key.get_secret_value(), "INFTD_DEPLOYER_KEY")
    minter = args.minter
    if minter is None and settings.minter_key is not None:
        minter = account_from_key(
            settings.minter_key.get_secret_value(), "INFTD_MINTER_KEY"
        ).address
    deployment = deploy_contracts(
        args.rpc_url,
        deployer,
        minter=minter or deployer.address,
        operator=args.operator or deployer.address,
        packages=settings.packages,
        credit_price_wei=settings.credit_price_wei,
        progress=say,
    )
    out = args.out or settings.deployment_path
    deployment.write(out)
    say(
        f"deployed on chain {deployment.chain_id}: INFTPackage {deployment.package_address}, "
        f"GenerationNFT {deployment.generation_address}; wrote {out}"
    )


def cmd_migrate(args: argparse.Namespace) -> None:
    from inftd.store import migrate

    settings = load_settings(args, database_url=args.database_url)
    migrate.upgrade(settings.database, args.revision)
    say(f"database at revision {migrate.current_revision(settings.database)}")


def _role_override(args: argparse.Namespace) -> dict[str, Any]:
    if args.role is None:
        return {}
    try:
        return {"daemon": {"roles": parse_roles(args.role)}}
    except ValueError as exc:
        raise ConfigError("--role", str(exc)) from None


def cmd_run(args: argparse.Namespace) -> None:
    from inftd.daemon.cli.run import serve
    from inftd.daemon.process.roles import describe, roles_of
    from inftd.indexer.deployment import Deployment

    settings = load_settings(args, **_api_override(args), **_role_override(args))
    roles_of(settings)  # a split on SQLite fails here, before anything opens
    deployment = Deployment.read(settings.deployment_path)
    with data_dir_held(settings.data_dir, alone=is_sqlite(settings.database)):
        run_until_signal(
            lambda stop: serve(
                settings,
                deployment,
                stop,
                on_ready=lambda url: say(f"inftd API on {url}"),
                on_started=lambda roles: say(f"inftd running {describe(roles)}"),
            )
        )


def cmd_status(args: argparse.Namespace) -> None:
    from inftd.daemon.cli.status import run_status

    settings = load_settings(args)
    code = asyncio.run(run_status(settings, args.json, say))
    if code:
        raise SystemExit(code)


def cmd_backfill(args: argparse.Namespace) -> None:
    from inftd.daemon.cli.backfill import backfill

    settings = load_settings(args)
    with data_dir_held(settings.data_dir, alone=is_sqlite(settings.database)):
        summary = asyncio.run(backfill(settings, args.from_block, args.to_block))
    say(summary)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "backfill": cmd_backfill,
    "dev": cmd_dev,
    "deploy": cmd_deploy,
    "migrate": cmd_migrate,
    "run": cmd_run,
    "status": cmd_status,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ConfigError as exc:
        return _failed(args, exc, EXIT_CONFIG)
    except (DaemonError, StoreError, IndexerError) as exc:
        return _failed(args, exc, EXIT_ERROR)
    except sqlalchemy.exc.OperationalError as exc:  # the database refused or is locked
        return _failed(args, f"the database failed: {exc.orig}", EXIT_ERROR)
    except OSError as exc:  # a file or socket the command needs
        return _failed(args, exc.strerror or str(exc), EXIT_ERROR, exc)
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        return _failed(args, f"unexpected {type(exc).__name__}: {exc}", EXIT_ERROR, exc)
    return 0


def _failed(
    args: argparse.Namespace, what: object, code: int, exc: BaseException | None = None
) -> int:
    """One line on stderr naming the problem; the traceback too with ``--debug``."""
    line = f"inftd: error: {what}"
    if exc is not None and isinstance(exc, OSError) and exc.filename:
        line += f": {exc.filename}"
    print(line.splitlines()[0], file=sys.stderr)
    if args.debug:
        traceback.print_exc(file=sys.stderr)
    else:
        logging.getLogger(__name__).debug("failed", exc_info=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
