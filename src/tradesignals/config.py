"""Settings, read once from the environment (prefix ``TS_``) by the wiring and passed down.

Everything a deployment may want to change lives here: mode, where state goes, service URLs and the
tier prices. Nothing below the wiring reads the environment.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.domain.trade_plan import MAX_SWING_SESSIONS, MIN_SWING_SESSIONS, PlanParams


class Mode(StrEnum):
    EMBEDDED = "embedded"
    SERVER = "server"


class ConfigError(Exception):
    """A setting that cannot be used; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TS_", extra="ignore", validate_default=True)

    mode: Mode = Mode.EMBEDDED
    home: Path = Field(default=Path("var"), description="State directory: SQLite file, lake, models, images.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite in TS_HOME (embedded); required in server mode.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = Field(
        default=False,
        description="TS_REDIS_URL names a node of a Redis Cluster: the client discovers the others (ADR 0027).",
    )
    bus_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="A publish returns once this many replicas have it (WAIT), so a failover loses none.",
    )
    bus_partitions: int = Field(default=8, ge=1, le=1024)
    bus_entry_messages: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Most messages a batch publish packs into one Redis stream entry (ADR 0031); 1 during a rolling upgrade from a release before batch entries.",
    )
    bus_prefix: str = Field(default="ts", min_length=1, pattern=r"^[^{}]+$")  # braces: hash tags (ADR 0027)
    bus_lease_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a consumer (an engine, an API node's relay) may go silent before others take its partitions.",
    )

    # Tiers and prices (USD). Settings, so that marketing can change them without a release.
    premium_price_usd: Decimal = Field(default=Decimal("19.99"), ge=0)
    premium_period_days: int = Field(default=30, ge=1)
    dynamic_price_usd: Decimal = Field(default=Decimal("4.99"), ge=0)
    dynamic_duration_hours: int = Field(default=72, ge=1)

    # Demo / feeds.
    feed: str = Field(
        default="sim",
        description="sim | replay:PATH | binance[:SYM,…] | alpaca:SYM,… | polygon:SYM,…",
    )
    engine_input: str = Field(
        default="bars", pattern="^(bars|ticks)$", description="What the engine scores from."
    )
    model: str = Field(
        default="auto",
        description="Registry model name (TS_HOME/models/NAME), 'auto' = named after the signal type, 'rule' = placeholder.",
    )
    min_edge: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description="Engine-wide floor on a model's edge: confidence minus its base rate (probability points).",
    )
    model_store: str | None = Field(
        default=None,
        description="s3://BUCKET/PREFIX for model artifacts (server mode); default TS_HOME/models.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, Ceph…).")
    image_store: str | None = Field(
        default=None,
        description="s3://BUCKET/PREFIX for signal images (several API nodes); default TS_HOME/images.",
    )
    vapid_key_file: Path | None = Field(
        default=None,
        description="Web Push VAPID private key (PEM, P-256); embedded default TS_HOME/vapid-key.pem, created 0600.",
    )
    vapid_subject: str = Field(
        default="mailto:push@tradesignals.invalid",
        pattern=r"^(mailto:|https://)\S+$",
        description="The VAPID 'sub' claim: a mailto: or https: contact for push services.",
    )
    push_allow_loopback: bool = Field(
        default=False, description="Accept http://127.0.0.1 push endpoints (tests, local development only)."
    )
    image_max_pending: int = Field(
        default=8, ge=1, le=1000, description="On-demand image renders allowed to wait at once (then 503)."
    )
    train_demo_model: bool = Field(
        default=False,
        description="Train a small model on simulated history at start when none is registered.",
    )
    earnings_file: Path | None = Field(
        default=None, description="CSV symbol,date[,time bmo|amc]: signals expire before each report."
    )
    event_rules: str = Field(
        default="",
        description="Event-driven signals (rules, no fitted edge; docs/event-rules.md), comma-separated: "
        "earnings (needs TS_EARNINGS_FILE), catalyst (needs TS_NEWS_FEED in the engine's process). Off by default.",
    )
    news_feed: str | None = Field(
        default=None,
        description="replay:PATH | polygon[:TICKER] | alpaca[:SYM,SYM…] | sec:CIK[,CIK…], several joined by + "
        "(de-duplicated across them).",
    )
    news_public_delay_min: int = Field(
        default=60,
        ge=0,
        le=10_080,
        description="News received in the last N minutes is for premium callers (and holders of an upgrade "
        "to a signal on that symbol); anonymous and free callers see older items, told the rest is delayed.",
    )
    company_tickers: Path | None = Field(
        default=None,
        description="Local copy of SEC's company_tickers.json: news items with no symbol get one from a "
        "company name in the headline (replay and Polygon feeds).",
    )
    news_poll_s: float = Field(default=60.0, gt=0, description="Seconds between polls of a live news source.")
    polygon_news_url: str = "https://api.polygon.io"
    sec_user_agent: str = Field(
        default="", description="The SEC asks for 'Company contact@example.com' on every EDGAR request."
    )
    sec_url: str = "https://data.sec.gov"
    data_dir: Path | None = Field(
        default=None,
        description="Shared data folder; the sentiment model is trained from it on first use when absent.",
    )
    binance_url: str = "wss://stream.binance.com:9443"
    # Provider credentials: SecretStr, so no repr, log line or error message shows them.
    alpaca_key: SecretStr = SecretStr("")
    alpaca_secret: SecretStr = SecretStr("")
    alpaca_feed: str = "iex"
    alpaca_url: str | None = None
    alpaca_news_url: str | None = None  # default: Alpaca's wss://stream.data.alpaca.markets/v1beta1/news
    polygon_key: SecretStr = SecretStr("")
    polygon_url: str | None = None
    sim_symbols: int = Field(default=20, ge=1, le=5000)
    sim_seed: int = 7
    speed: float = Field(
        default=60.0, gt=0, description="Simulated seconds per wall second; inf = as fast as possible."
    )
    feed_timeframe: str = Field(
        default="1m", description="Bars the feed builds or subscribes to (simulator, Binance klines)."
    )
    tick_timeframe: str = Field(
        default="1m",
        description="What the engine aggregates ticks to (TS_ENGINE_INPUT=ticks); bars carry their own.",
    )
    signal_timeframe: str | None = Field(
        default=None, description="Removed: split into TS_FEED_TIMEFRAME and TS_TICK_TIMEFRAME."
    )
    asset_class: AssetClass | None = Field(
        default=None,
        description="Asset class of every symbol the feed carries, when it knows; unset: from the symbol.",
    )

    # The trade plan (domain.trade_plan.PlanParams; defaults are the published plan).
    plan_stop_atr: float = Field(default=1.5, gt=0, allow_inf_nan=False)
    plan_target_r: Annotated[tuple[float, ...], NoDecode] = (1.0, 2.0, 3.0)
    plan_swing_sessions: int = Field(default=5, ge=MIN_SWING_SESSIONS, le=MAX_SWING_SESSIONS)
    plan_cooldown_bars: int = Field(default=3, ge=0)

    # Costs per asset class (domain.costs): unset fields keep the documented defaults.
    costs_equity_commission_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_equity_half_spread_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_equity_slippage_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_equity_borrow_bp_per_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_crypto_commission_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_crypto_half_spread_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_crypto_slippage_bp: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    costs_crypto_borrow_bp_per_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    # Ledger checkpoints (docs/ledger.md). Embedded mode creates the key at TS_HOME/ledger-key.pem
    # on first start; server mode reads it from a secret file (or variable) and never creates one.
    ledger_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM PKCS#8) signing ledger checkpoints; default TS_HOME/ledger-key.pem (embedded).",
    )
    ledger_key: SecretStr | None = Field(
        default=None,
        description="The same key as text (PEM or 64 hex digits), for platforms that pass secrets in variables.",
    )
    checkpoint_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between signed ledger checkpoints (also one at start and stop).",
    )

    # The API's edges (docs/architecture.md, "HTTP edges").
    api_db_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads the API runs database reads on, apart from the engine's writes.",
    )
    http_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body; larger is refused with 413."
    )
    http_max_header_bytes: int = Field(
        default=65_536, ge=1024, description="Largest request line plus headers; larger: 431 (414)."
    )
    http_request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Time a client has to send a whole request (head and body); then 408 and close.",
    )
    http_keep_alive_s: int = Field(
        default=5, ge=1, description="Idle keep-alive connections close after this."
    )
    http_max_concurrency: int = Field(
        default=16_384,
        ge=1,
        description="Open connections (WebSockets included) and requests in flight; past it, 503 at once.",
    )
    summary_max_views: int = Field(
        default=256,
        ge=2,
        le=100_000,
        description="Filtered track-record summaries kept up to date (least recently used dropped).",
    )
    # Accounts (docs/architecture.md "Accounts, entitlements and billing").
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 secret for access tokens (32+ chars); default: TS_HOME/jwt-secret, created 0600.",
    )
    access_token_ttl_s: int = Field(default=900, ge=60, le=86400)
    ws_recheck_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds between re-checks of an open WebSocket's subscriptions (a revoked or "
        "lapsed entitlement ends its channels within this time).",
    )
    # WebSocket delivery (README "WebSocket"): bounds per node, per user, per socket.
    ws_max_connections: int = Field(default=10_000, ge=1, description="Open WebSockets per node.")
    ws_max_connections_per_user: int = Field(default=10, ge=1, description="Open WebSockets per account.")
    ws_max_channels: int = Field(default=100, ge=1, le=10_000, description="Channels one socket may hold.")
    ws_max_frame_bytes: int = Field(
        default=64 * 1024, ge=256, le=1024 * 1024, description="Largest client frame, in bytes (UTF-8)."
    )
    ws_idle_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="A socket that sends no frame (ping included) this long is closed.",
    )
    ws_ping_interval_s: float = Field(default=20.0, gt=0, description="Protocol pings from the server.")
    ws_ping_timeout_s: float = Field(
        default=20.0, gt=0, description="No pong within this: the socket is closed."
    )
    ws_send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A send that makes no progress this long closes the socket (4008).",
    )
    ws_allowed_origins: str = Field(
        default="",
        description="Comma-separated browser origins (scheme://host[:port]) allowed besides the API's own.",
    )
    ws_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the dedicated WebSocket fan-out server (path /ws) beside the API's own "
        "/ws; unset: none. Route /ws to it at the proxy (docs/operations.md).",
    )
    ws_host: str | None = Field(
        default=None, description="Address the dedicated WebSocket server binds; unset: ``host``."
    )
    ws_client_queue: int = Field(default=1000, ge=10, description="Frames waiting per socket before it lags.")
    ws_replay_chunk: int = Field(default=500, ge=1, le=10_000, description="Messages read per replay step.")
    ws_retention: int = Field(
        default=10_000, ge=10, description="Messages kept per channel for `since` (older: resync)."
    )
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    login_max_failures: int = Field(default=5, ge=1, description="Wrong passwords in a row before lock-out.")
    login_lockout_s: int = Field(default=900, ge=1)
    auth_rate_per_min: int = Field(default=20, ge=1, description="Auth calls per client address per minute.")
    operator_token: SecretStr | None = Field(
        default=None, description="X-Operator-Token that may read /metrics (unset: admins only)."
    )
    payment_provider: str = Field(default="local", pattern="^(local|stripe)$")
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_premium_price_id: str = ""
    stripe_api_base: str | None = Field(default=None, description="Override Stripe's API address (tests).")
    oauth_google_client_id: str = ""
    oauth_google_client_secret: SecretStr | None = None
    oauth_github_client_id: str = ""
    oauth_github_client_secret: SecretStr | None = None
    oauth_api_base: str | None = Field(
        default=None, description="Override the OAuth providers' hosts (tests)."
    )
    public_url: str = Field(default="http://127.0.0.1:8000", description="Where Checkout sends people back.")

    # The explain sidecar (README "LLM explanations and research"). The template needs no key and
    # stays the default; a provider needs its key (SecretStr: never shown).
    llm_provider: str = Field(
        default="template",
        pattern="^(template|openai|anthropic|perplexity)$",
        description="Who writes explanations and research: template | openai | anthropic | perplexity.",
    )
    llm_model: str | None = Field(default=None, description="The provider's model; default per provider.")
    llm_base_url: str | None = Field(
        default=None, description="Override the provider's API address (a proxy, a local server in tests)."
    )
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    perplexity_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=20.0, gt=0, le=600, description="Per request; then the template.")
    llm_max_retries: int = Field(default=2, ge=0, le=10, description="SDK retries (429 honours Retry-After).")
    llm_max_tokens: int = Field(default=800, ge=16, le=8192)
    llm_stream: bool = Field(default=True, description="Stream answers (server-sent events).")
    llm_concurrency: int = Field(default=4, ge=1, le=64, description="Provider calls in flight at once.")
    llm_upgrade_poll_s: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds between looks for newly upgraded signals."
    )
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": (0.15, 0.60),
            "gpt-4o": (2.50, 10.00),
            "claude-3-5-haiku-latest": (0.80, 4.00),
            "claude-3-5-sonnet-latest": (3.00, 15.00),
            "sonar": (1.00, 1.00),
        },
        description="USD per million (input, output) tokens by model, as JSON; unpriced models cost None.",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Roles without HTTP (engine, ingest) serve Prometheus metrics on this port (docs/operations.md).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of TS_METRICS_PORT: no token guards it, keep it internal."
    )
    metrics_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between refreshes of the lag and up gauges."
    )
    registry_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds between a process's heartbeats in the process registry; an entry "
        "lapses after three missed ones (/api/health lists the live processes).",
    )
    health_max_lag: int = Field(
        default=2_000,
        ge=0,
        description="Unread + pending messages (on Redis: stream entries, ADR 0031) a role's consumer "
        "group may hold and still count as keeping up in /api/health (an unknown unread never does).",
    )
    bus_retry_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a role rides out an unreachable Redis (back-off) before it fails.",
    )

    @field_validator("event_rules")
    @classmethod
    def _event_rules_known(cls, v: str) -> str:
        parts = [p.strip() for p in v.split(",") if p.strip()]
        unknown = [p for p in parts if p not in ("earnings", "catalyst")]
        if unknown:
            raise ValueError(f"unknown event rule(s) {unknown}; expected earnings and/or catalyst")
        return ",".join(dict.fromkeys(parts))

    @field_validator("news_feed")
    @classmethod
    def _news_feed_known(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for part in v.split("+"):
            kind, _, arg = part.partition(":")
            if kind == "replay" and arg:
                if not Path(arg).is_file():
                    raise ValueError(f"news replay file {arg} does not exist")
                continue
            if kind in ("polygon", "alpaca"):
                continue
            if kind == "sec" and arg and all(c.strip().isdigit() for c in arg.split(",")):
                continue
            raise ValueError(
                f"unknown news feed {part!r}; expected 'replay:PATH', 'polygon[:TICKER]', "
                "'alpaca[:SYM,SYM…]' or 'sec:CIK[,CIK…]', several joined by '+'"
            )
        return v

    @field_validator("feed")
    @classmethod
    def _feed_known(cls, v: str) -> str:
        kind, _, arg = v.partition(":")
        if kind == "sim" and not arg:
            return v
        if kind in ("replay", "alpaca", "polygon") and arg:
            return v
        if kind == "binance":
            return v
        raise ValueError(
            f"unknown feed {v!r}; expected 'sim', 'replay:PATH', 'binance[:SYMBOLS]', 'alpaca:SYMBOLS' or 'polygon:SYMBOLS'"
        )

    @field_validator("feed_timeframe", "tick_timeframe")
    @classmethod
    def _timeframe_known(cls, v: str) -> str:
        return Timeframe.parse(v).value  # its ValueError lists the accepted values

    @field_validator("signal_timeframe")
    @classmethod
    def _renamed(cls, v: str | None) -> None:
        if v is not None:
            raise ValueError(
                "renamed: set TS_FEED_TIMEFRAME for the feed's bars and TS_TICK_TIMEFRAME for tick aggregation"
                " (the engine takes each bar's timeframe from the bar)"
            )
        return None

    @field_validator("plan_target_r", mode="before")
    @classmethod
    def _targets(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                v = tuple(float(x) for x in v.split(",") if x.strip())
            except ValueError:
                raise ValueError("expected comma-separated R multiples like 1,2,3") from None
        if isinstance(v, list | tuple):
            PlanParams(target_r=tuple(v))  # the plan's own rule: positive, increasing R multiples
        return v

    @property
    def feed_kind(self) -> str:
        return self.feed.partition(":")[0]

    @property
    def feed_symbols(self) -> list[str]:
        """Comma-separated symbols after the feed name, upper-cased (live feeds)."""
        arg = self.feed.partition(":")[2]
        return [s.strip().upper() for s in arg.split(",") if s.strip()]

    @field_validator("model_store", "image_store")
    @classmethod
    def _store_known(cls, v: str | None) -> str | None:
        if v is None or (v.startswith("s3://") and len(v) > len("s3://")):
            return v
        raise ValueError(f"unknown object store {v!r}; expected s3://BUCKET[/PREFIX] or unset")

    @field_validator("log_level")
    @classmethod
    def _level_known(cls, v: str) -> str:
        if v.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError(f"unknown log level {v!r}; expected debug, info, warning or error")
        return v.lower()

    @field_validator("llm_prices")
    @classmethod
    def _prices_valid(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for model, (pin, pout) in v.items():
            if not (0 <= pin < 1e6 and 0 <= pout < 1e6):
                raise ValueError(f"price of {model!r} must be two non-negative USD per million tokens")
        return v

    @property
    def llm_api_key(self) -> SecretStr | None:
        """The key of the configured provider (None for the template)."""
        return {
            "openai": self.openai_api_key,
            "anthropic": self.anthropic_api_key,
            "perplexity": self.perplexity_api_key,
        }.get(self.llm_provider)

    @property
    def db_url(self) -> str:
        """The app database. Server mode has no default: a guessed one (the superuser on a local
        test database) would let a misconfigured node start against the wrong data."""
        if self.database_url:
            return self.database_url
        if self.mode is Mode.SERVER:
            raise ConfigError(
                "server mode needs TS_DATABASE_URL (postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB);"
                " there is no default database"
            )
        return f"sqlite:///{(self.home / 'tradesignals.db').as_posix()}"

    @property
    def backtests_dir(self) -> Path:
        """Where ``tradesignals backtest`` writes results by default and the API reads them from."""
        return self.home / "backtests"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus overrides, turning validation errors into one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


# Settings whose value may carry a credential (a key, or a URL with a password): a message names
# the variable, never echoes the value.
_SECRET_WORDS = ("key", "secret", "url", "password", "token")


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = "_".join(str(p) for p in err.get("loc", ())) or "settings"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        value = err.get("input")
        secret = any(w in name.lower() for w in _SECRET_WORDS)
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        shown = " (value not shown)" if secret and shown else shown
        parts.append(f"TS_{name.upper()}: {msg}{shown}")
    return "invalid settings: " + "; ".join(parts)
