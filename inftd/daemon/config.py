"""Settings: one typed object, built once at start from a TOML file and ``INFTD_*`` variables.

Precedence: command-line flags > environment > TOML file > defaults. Nested keys use ``__``
in the environment (``INFTD_API__PORT=9000``); lists take commas (``INFTD_CHAIN__RPC_URLS``).
Secrets are read from the environment only: a secret in the TOML file is a config error.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from inftd.agents.limits import UsageLimits
from inftd.daemon.errors import ConfigError
from inftd.store.db import sqlite_url

SECRET_FIELDS = frozenset(
    {
        "auth_secret",
        "deployer_key",
        "minter_key",
        "operator_api_key",
        "webhook_secret",
        "openai_api_key",
        "gemini_api_key",
        "cloudflare_api_token",
    }
)

_toml_data: ContextVar[dict[str, Any]] = ContextVar("_toml_data", default={})  # noqa: B039


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)  # 0 takes a free port
    cors_origins: CsvList = []
    # Sign-In with Ethereum: the domain messages must name (default: host:port of the API).
    domain: str | None = None
    nonce_ttl: float = Field(300, gt=0, le=86_400)  # seconds a sign-in nonce stays valid
    token_ttl: float = Field(3600, gt=0, le=30 * 86_400)  # seconds a bearer token is valid
    rate_per_ip: float = Field(20, gt=0)  # requests per second per client IP (burst: 2x)
    rate_per_address: float = Field(10, gt=0)  # requests per second per signed-in address
    ws_queue: int = Field(256, ge=1, le=100_000)  # events queued per WebSocket before cut-off
    ws_heartbeat: float = Field(20, gt=0, le=600)  # seconds between WebSocket pings
    # Seconds between reads of the events table when nothing wakes the hub (on PostgreSQL
    # a NOTIFY from any process wakes it at once; this is the floor if a NOTIFY is lost).
    hub_poll_interval: float = Field(0.5, gt=0, le=86_400)

    _split = field_validator("cors_origins", mode="before")(_split_csv)


class PushSettings(_Section):
    allow_private_targets: bool = False  # loopback/private webhook URLs (tests, closed networks)
    max_attempts: int = Field(8, ge=1, le=100)  # deliveries before an event goes dead-letter
    backoff_base: float = Field(1.0, gt=0, le=3600)  # seconds before the first retry
    backoff_max: float = Field(600, gt=0, le=86_400)  # longest wait between retries
    timeout: float = Field(10, gt=0, le=120)  # seconds per delivery attempt
    # Seconds a dispatcher holds the deliveries it claimed; another takes them over after.
    lease: float = Field(60, gt=0, le=3600)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> PushSettings:
        if self.lease <= self.timeout:
            raise ValueError("lease must exceed timeout, or a slow attempt is sent twice")
        return self


class ChainSettings(_Section):
    rpc_urls: CsvList = []
    deployment_file: Path | None = None  # default: <data_dir>/deployment.json
    confirmations: int = Field(0, ge=0, le=1000)
    poll_interval: float = Field(1.0, gt=0, le=600)
    reorg_window: int = Field(128, ge=1, le=100_000)
    log_concurrency: int = Field(4, ge=1, le=64)
    initial_log_range: int = Field(2000, ge=1, le=1_000_000)

    _split = field_validator("rpc_urls", mode="before")(_split_csv)

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"not an http(s) or ws(s) URL: {url!r}")
        return urls

    @property
    def http_urls(self) -> list[str]:
        return [u for u in self.rpc_urls if u.startswith(("http://", "https://"))]

    @property
    def ws_url(self) -> str | None:
        """The first ws(s):// URL: new heads are followed over it with eth_subscribe."""
        return next((u for u in self.rpc_urls if u.startswith(("ws://", "wss://"))), None)

    @model_validator(mode="after")
    def _confirm_within_window(self) -> ChainSettings:
        if self.confirmations > self.reorg_window:
            raise ValueError("confirmations must not exceed reorg_window")
        if self.rpc_urls and not self.http_urls:
            raise ValueError("rpc_urls needs an http(s):// URL besides any ws(s):// one")
        return self


class PackageTypeSettings(_Section):
    id: int = Field(ge=0, le=255)
    name: str
    price_wei: int = Field(ge=0)
    credits: int = Field(gt=0)
    active: bool = True
    limits: UsageLimits = UsageLimits()


DEFAULT_PACKAGES = [
    PackageTypeSettings(id=0, name="Starter", price_wei=10**16, credits=100),
    PackageTypeSettings(
        id=1,
        name="Creator",
        price_wei=5 * 10**16,
        credits=600,
        limits=UsageLimits(max_concurrent_jobs=4, daily_credit_cap=1000, priority=1),
    ),
    PackageTypeSettings(
        id=2,
        name="Studio",
        price_wei=2 * 10**17,
        credits=3000,
        limits=UsageLimits(
            max_concurrent_jobs=8, daily_credit_cap=5000, max_prompt_chars=8000, priority=2
        ),
    ),
]


class MemorySettings(_Section):
    # "local" is an offline hashing embedding; the others call the provider's embedding model.
    embedder: Literal["local", "openai", "gemini", "cloudflare"] = "local"
    model: str | None = None  # the provider's embedding model; None: its default
    dimensions: int = Field(256, ge=16, le=4096)  # of the local embedding
    max_per_agent: int = Field(500, ge=10)  # beyond it, old unimportant memories are merged
    top_k: int = Field(5, ge=1, le=100)  # memories a prompt draws on


class ProvidersSettings(_Section):
    """Where the AI providers are reached; their keys are secrets, read from the environment."""

    openai_base_url: str | None = None  # None: the SDK's default (api.openai.com/v1)
    gemini_base_url: str | None = None  # None: the SDK's default
    cloudflare_base_url: str = "https://api.cloudflare.com"
    cloudflare_account_id: str | None = None  # needed for Workers AI
    # Seconds a provider call may go without progress (to connect, to start, between chunks).
    timeout: float = Field(60, gt=0, le=600)
    # Default models; None: the provider module's default (see inftd/daemon/providers/).
    openai_text_model: str | None = None  # gpt-5.4-mini
    openai_image_model: str | None = None  # gpt-image-1-mini
    gemini_text_model: str | None = None  # gemini-3.1-flash-lite
    gemini_image_model: str | None = None  # gemini-3.1-flash-image
    cloudflare_text_model: str | None = None  # @cf/meta/llama-3.1-8b-instruct
    cloudflare_image_model: str | None = None  # @cf/black-forest-labs/flux-1-schnell

    @field_validator("openai_base_url", "gemini_base_url", "cloudflare_base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        return url


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file's values, set by ``Settings.load`` for the duration of one build."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _toml_data.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INFTD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Path(".inftd")
    database_url: str | None = None  # default: SQLite file <data_dir>/inftd.db
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    api: ApiSettings = ApiSettings()
    chain: ChainSettings = ChainSettings()
    push: PushSettings = PushSettings()
    memory: MemorySettings = MemorySettings()
    providers: ProvidersSettings = ProvidersSettings()
    packages: list[PackageTypeSettings] = DEFAULT_PACKAGES
    credit_price_wei: int = Field(10**14, gt=0)  # top-up price of one credit

    # Secrets: environment only, never logged, never in an API response.
    auth_secret: SecretStr | None = None  # signs bearer tokens; random per process if unset
    deployer_key: SecretStr | None = None
    minter_key: SecretStr | None = None
    operator_api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    cloudflare_api_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build the settings or raise one ConfigError naming the bad key."""
        token = _toml_data.set(_read_toml(config_file) if config_file else {})
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            raise _config_error(exc) from None
        except SettingsError as exc:
            raise ConfigError("environment", str(exc)) from None
        finally:
            _toml_data.reset(token)

    @property
    def database(self) -> str:
        return self.database_url or sqlite_url(self.data_dir / "inftd.db")

    @property
    def deployment_path(self) -> Path:
        return self.chain.deployment_file or self.data_dir / "deployment.json"

    def limits_of(self, package_type: int) -> UsageLimits:
        """The usage limits of a package type; the defaults for a type not configured."""
        found = next((p for p in self.packages if p.id == package_type), None)
        return found.limits if found else UsageLimits()

    def secret_values(self) -> list[str]:
        """Raw secret values, for the log filter that masks them."""
        values = (getattr(self, name) for name in SECRET_FIELDS)
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    for key in sorted(SECRET_FIELDS & data.keys()):
        raise ConfigError(
            key, f"secrets are read from the environment only; set INFTD_{key.upper()}"
        )
    return data


def _config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "settings"
    problem = first["msg"]
    if first["loc"] and first["loc"][0] not in SECRET_FIELDS and "input" in first:
        problem += f" (got {first['input']!r})"
    return ConfigError(key, problem)
