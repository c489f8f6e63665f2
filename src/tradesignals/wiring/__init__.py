"""The one place that reads Settings and chooses implementations.

Everything below receives its collaborators ready-made, so tests and the backtester can wire the
same core with other parts (a memory bus, a replay feed, a temporary database). The engine itself
is built by ``engine_builder.build_engine`` — the one builder every entry point uses.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from tradesignals.api.deps import HealthReport
from tradesignals.api.hub import Hub
from tradesignals.bus.base import Bus, BusError, GroupLag
from tradesignals.bus.registry import LiveProcess, MemoryRegistry, ProcessInfo, ProcessRegistry
from tradesignals.config import ConfigError, Mode, Settings
from tradesignals.domain.market import Timeframe
from tradesignals.domain.news import NewsFeed, ScoredNews
from tradesignals.engine.event_rules import CatalystBook
from tradesignals.features.news import NewsFeatureState
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.news.earnings import EarningsCalendar, EarningsCalendarError
from tradesignals.news.pipeline import NewsScorer
from tradesignals.storage.audience import SqlAudience
from tradesignals.storage.base import (
    CheckpointRepository,
    NewsRepository,
    SignalRepository,
    StorageError,
    UserRepository,
)
from tradesignals.storage.timeseries import BarStore
from tradesignals.wiring.engine_builder import (
    build_engine,
    build_scorer,
    demo_models_missing,
    model_name_for,
    model_registry,
    train_demo_models_apart,
)

if TYPE_CHECKING:
    from tradesignals.accounts.billing import BillingService, PaymentProvider
    from tradesignals.accounts.oauth import OAuthSignIn
    from tradesignals.accounts.service import AccountService, RateLimiter
    from tradesignals.domain.checkpoints import Signer
    from tradesignals.engine.checkpointer import Checkpointer
    from tradesignals.engine.pipeline import Scorer
    from tradesignals.images.service import SignalImages
    from tradesignals.llm.providers import Provider as LlmProvider
    from tradesignals.marketdata.validate import Validator
    from tradesignals.news.names import CompanyNames
    from tradesignals.push.service import PushService
    from tradesignals.storage.llm import SqlLlmStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One health probe. ``gates``: a failure makes this node not ready (503): what the node itself
    needs to serve (its database, Redis). A role that is down elsewhere is reported, not gated: an
    API node still serves history, accounts and billing, and taking every node out of the load
    balancer for it would take the whole site down (the alert rules page for it instead)."""

    ok: bool
    detail: str
    gates: bool = True


@dataclass(slots=True)
class Services:
    settings: Settings
    db: sa.Engine
    signals: SignalRepository
    users: UserRepository
    checkpoints: CheckpointRepository
    bus: Bus
    hub: Hub
    node_id: str
    bars: BarStore
    audience: SqlAudience
    accounts: AccountService
    billing: BillingService
    auth_limiter: RateLimiter
    oauth: OAuthSignIn
    earnings: EarningsCalendar | None = None
    news: NewsRepository | None = None
    news_scorer: NewsScorer | None = None  # set when TS_NEWS_FEED is: the model is loaded at start
    news_feed: NewsFeed | None = None
    news_features: NewsFeatureState = field(default_factory=NewsFeatureState)
    # Catalyst news for the catalyst rule (TS_EVENT_RULES=catalyst), filled by the news task.
    catalysts: CatalystBook = field(default_factory=CatalystBook)
    signer: Signer | None = None  # signs ledger checkpoints; None: this node has no key (API-only)
    llm_texts: SqlLlmStore | None = None  # explanations and research briefs (the explain sidecar's)
    llm_provider: LlmProvider | None = None  # None: the template writes them (TS_LLM_PROVIDER)
    images: SignalImages | None = None  # signal images (object store + render thread)
    push: PushService | None = None  # Web Push; None: no VAPID key on this node (server mode)
    # Which processes run which roles (ADR 0030): Redis in server mode, this process alone embedded.
    registry: ProcessRegistry = field(default_factory=MemoryRegistry)
    process_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when this process's feed has ended (a replay finished): its recorder drains, then stops.
    feed_done: asyncio.Event = field(default_factory=asyncio.Event)
    ws_port_bound: int | None = None  # the dedicated WebSocket server's port, once it listens
    ws_listening: asyncio.Event = field(default_factory=asyncio.Event)
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def start_roles(self, roles: set[str], feed: Feed | None = None) -> None:
        """Start this node's background roles (see the module function ``start_roles``)."""
        start_roles(self, roles, feed)

    async def check_health(self) -> dict[str, Check]:
        """Each dependency's answer and each group's lag; the same probes refresh the gauges."""
        checks, _ = await self._probe()
        return checks

    async def health_report(self) -> HealthReport:
        """``check_health``, each role's group lag with its keeping-up flag, and the live processes."""
        from tradesignals.bus.registry import RoleLag, keeping_up

        checks, lags = await self._probe()
        bound = self.settings.health_max_lag
        groups = [RoleLag(name, lag, keeping_up(lag, bound)) for name, lag in lags.items()]
        processes: list[LiveProcess] | None = None
        if checks["bus"].ok:
            try:
                processes = await self.registry.live()
            except BusError as exc:
                log.warning("health.registry_unreadable", error=str(exc)[:200])
        return HealthReport(checks=checks, groups=groups, processes=processes)

    async def _probe(self) -> tuple[dict[str, Check], dict[str, GroupLag]]:
        from tradesignals.bus import metrics as bus_metrics

        checks = {"database": await self._check_db(), "bus": await self._check_bus()}
        bus_metrics.DB_UP.set(1 if checks["database"].ok else 0)
        bus_metrics.UP.set(1 if checks["bus"].ok else 0)
        lags: dict[str, GroupLag] = {}
        if checks["bus"].ok:
            for name, topic, group in self.lag_groups():
                checks[f"lag:{name}"], lag = await self._check_lag(topic, group)
                if lag is not None:
                    lags[name] = lag
        return checks, lags

    def lag_groups(self) -> list[tuple[str, str, str]]:
        """(name, topic, group) of the consumer groups whose lag health reports: the roles that must
        keep up with the market — the engine on its input, the recorder on bars."""
        from tradesignals.bus import topics

        engine_topic = topics.MARKET_TICKS if self.settings.engine_input == "ticks" else topics.MARKET_BARS
        return [("engine", engine_topic, "engine"), ("recorder", topics.MARKET_BARS, "history")]

    async def _check_lag(self, topic: str, group: str) -> tuple[Check, GroupLag | None]:
        """Reported, not judged: neither a lagging engine nor one that is down takes the API node out
        of a load balancer (``gates`` False).

        ``ok`` is false only when messages wait (or may: an unknown unread) and the group has no
        live member at all — the role is down: the body says so and ``TsConsumerGroupWithoutMembers``
        pages.
        """
        try:
            lag = await asyncio.wait_for(self.bus.lag(topic, group), timeout=3.0)
        except (TimeoutError, BusError) as exc:
            return Check(True, f"{topic}: lag unknown ({str(exc)[:120] or type(exc).__name__})", False), None
        if lag is None:
            return Check(True, f"{topic}: no {group!r} group yet", False), None
        from tradesignals.bus import metrics as bus_metrics

        # Unknown: NaN (neither a reassuring 0 nor a stale value) and the unknown gauge's alert.
        bus_metrics.LAG.labels(topic, group, "unread").set(float("nan") if lag.unread is None else lag.unread)
        bus_metrics.LAG_UNKNOWN.labels(topic, group).set(1 if lag.unread is None else 0)
        bus_metrics.LAG.labels(topic, group, "pending").set(lag.pending)
        bus_metrics.MEMBERS.labels(topic, group).set(lag.members)
        unread = "unknown" if lag.unread is None else str(lag.unread)
        waiting = lag.unread is None or lag.unread + lag.pending > 0
        detail = f"{topic}: unread={unread} pending={lag.pending} members={lag.members}"
        return Check(not (waiting and lag.members == 0), detail, gates=False), lag

    async def _check_db(self) -> Check:
        def probe() -> None:
            with self.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(probe), timeout=3.0)
        except (TimeoutError, sa.exc.SQLAlchemyError) as exc:
            return Check(False, f"{self.db.url.get_backend_name()}: {type(exc).__name__}")
        return Check(True, self.db.url.get_backend_name())

    async def _check_bus(self) -> Check:
        name = type(self.bus).__name__
        try:
            ok = await asyncio.wait_for(self.bus.ping(), timeout=3.0)
        except TimeoutError:
            ok = False
        return Check(ok, name if ok else f"{name}: no answer")

    async def close(self, grace: float = 2.0) -> None:
        """Ask the roles to finish (flush, ack, leave their groups), then cancel what is left.

        Bounded: a task that ignores cancellation is reported with its stack and left behind, so
        shutdown never hangs on one misbehaving role.
        """
        self.stop.set()
        log.info("shutdown.begin", tasks=[t.get_name() for t in self.tasks])
        if self.tasks:
            _, still = await asyncio.wait(self.tasks, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                _, stuck = await asyncio.wait(still, timeout=grace)
                for task in stuck:
                    frames = [
                        f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack()
                    ]
                    log.warning("shutdown.stuck", task=task.get_name(), where=" <- ".join(reversed(frames)))
        for task in self.tasks:
            if not task.done():
                continue
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:  # a failed background task is logged at shutdown, not re-raised
                log.warning("task.failed", task=task.get_name(), error=repr(exc))
        self.tasks.clear()
        if self.news_feed is not None:  # idempotent: the news task closes it too when it ran
            await self.news_feed.close()
        if self.llm_provider is not None:  # idempotent: the explain task closes it too when it ran
            await self.llm_provider.close()
        for step, action in (
            ("bus", self.bus.close()),
            ("channel log", self.hub.log.close()),
            ("registry", self.registry.close()),
        ):
            try:
                await asyncio.wait_for(action, timeout=grace)
            except TimeoutError:
                log.warning("shutdown.stuck", step=step)
        for hook in self.on_close:
            try:
                await asyncio.to_thread(hook)
            except Exception as exc:  # a failed hook is logged; it must not stop the others
                log.warning("shutdown.hook_failed", error=repr(exc))
        if self.images is not None:
            await asyncio.to_thread(self.images.close)
        if self.push is not None:
            await self.push.sender.close()
        await asyncio.to_thread(self.bars.close)
        self.db.dispose()
        log.info("shutdown.done")


def _build_bus(settings: Settings) -> Bus:
    if settings.mode is Mode.SERVER:
        from tradesignals.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(
            settings.redis_url,
            partitions=settings.bus_partitions,
            prefix=settings.bus_prefix,
            cluster=settings.redis_cluster,
            wait_replicas=settings.bus_wait_replicas,
            entry_messages=settings.bus_entry_messages,
        )
    from tradesignals.bus.memory import MemoryBus

    return MemoryBus(partitions=settings.bus_partitions)


async def build_services(settings: Settings) -> Services:
    """Connect, migrate (embedded) or verify (server), and return the services; one-line ConfigError on failure."""
    from tradesignals.storage.db import check_connection, make_engine, migrate
    from tradesignals.storage.repositories import SqlSignalRepository, SqlUserRepository

    # Read every file and reach every service before writing anything, so a failed start
    # leaves no half-made state.
    try:
        earnings = EarningsCalendar.from_csv(settings.earnings_file) if settings.earnings_file else None
    except EarningsCalendarError as exc:
        raise ConfigError(f"TS_EARNINGS_FILE: {exc}") from None
    llm_provider = build_llm_provider(settings)  # a provider without its key: refused before any write
    url = settings.db_url  # server mode without TS_DATABASE_URL stops here, before connecting
    bus = _build_bus(settings)
    if settings.mode is Mode.SERVER and not await bus.ping():
        await bus.close()
        from tradesignals.bus.redis_streams import safe_url

        raise ConfigError(f"bus: Redis at {safe_url(settings.redis_url)} does not answer (TS_REDIS_URL)")
    if settings.mode is Mode.EMBEDDED:
        settings.home.mkdir(parents=True, exist_ok=True)
    try:
        await asyncio.to_thread(check_connection, url)
        engine = make_engine(url)
        await asyncio.to_thread(migrate, engine)
    except StorageError as exc:
        await bus.close()
        raise ConfigError(f"database: {exc}") from None
    try:
        bars = await asyncio.to_thread(build_bar_store, settings, engine)
    except StorageError as exc:
        await bus.close()
        engine.dispose()
        raise ConfigError(f"history store: {exc}") from None
    try:
        signer = build_signer(settings)
    except ConfigError:
        await bus.close()
        engine.dispose()
        raise
    try:
        news_feed = build_news_feed(settings)
        news_scorer = await asyncio.to_thread(build_news_scorer, settings)
    except ConfigError:
        await bus.close()
        engine.dispose()
        raise
    node_id = f"{socket.gethostname()}-{os.getpid()}"
    from tradesignals.storage.checkpoints import SqlCheckpointRepository
    from tradesignals.storage.llm import SqlLlmStore
    from tradesignals.storage.news import SqlNewsRepository

    try:
        accounts, billing, limiter, oauth = build_accounts(settings, engine)
    except ConfigError:
        await bus.close()
        engine.dispose()
        raise
    images = build_images(settings, bars)
    try:
        push = build_push(settings, engine)
    except ConfigError:
        await bus.close()
        engine.dispose()
        raise
    registry = _build_registry(settings)
    return Services(
        images=images,
        push=push,
        accounts=accounts,
        billing=billing,
        auth_limiter=limiter,
        oauth=oauth,
        settings=settings,
        db=engine,
        signals=SqlSignalRepository(engine),
        users=SqlUserRepository(engine),
        audience=SqlAudience(engine),
        checkpoints=SqlCheckpointRepository(engine),
        bus=bus,
        hub=build_hub(settings),
        node_id=node_id,
        bars=bars,
        earnings=earnings,
        news=SqlNewsRepository(engine),
        news_scorer=news_scorer,
        news_feed=news_feed,
        signer=signer,
        llm_texts=SqlLlmStore(engine),
        llm_provider=llm_provider,
        registry=registry,
    )


def _build_registry(settings: Settings) -> ProcessRegistry:
    """Beside the bus: the deployment's Redis in server mode; this process alone when embedded."""
    if settings.mode is Mode.SERVER:
        from tradesignals.bus.registry import RedisRegistry

        return RedisRegistry(settings.redis_url, prefix=settings.bus_prefix, cluster=settings.redis_cluster)
    return MemoryRegistry()


def build_llm_provider(settings: Settings) -> LlmProvider | None:
    """The LLM provider TS_LLM_PROVIDER names, or None for the template (the default, no key).

    A provider without its key stops the start with one line naming the variable (never a value).
    """
    if settings.llm_provider == "template":
        return None
    from tradesignals.llm.providers import build_provider

    key = settings.llm_api_key
    if key is None or not key.get_secret_value():
        raise ConfigError(
            f"TS_LLM_PROVIDER={settings.llm_provider} needs TS_{settings.llm_provider.upper()}_API_KEY"
        )
    return build_provider(
        settings.llm_provider,
        api_key=key,
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        max_tokens=settings.llm_max_tokens,
        stream=settings.llm_stream,
    )


def build_images(settings: Settings, bars: BarStore) -> SignalImages:
    """Signal images in TS_IMAGE_STORE (s3://BUCKET/PREFIX), else under TS_HOME/images."""
    from tradesignals.images.service import SignalImages
    from tradesignals.models.registry import ArtifactStore, FileArtifactStore

    store: ArtifactStore
    if settings.image_store:
        from tradesignals.models.artifacts_s3 import S3ArtifactStore

        bucket, _, prefix = settings.image_store.removeprefix("s3://").partition("/")
        store = S3ArtifactStore(bucket, prefix or "images", endpoint_url=settings.s3_endpoint_url)
    else:
        if settings.mode is Mode.SERVER:
            log.warning(
                "images.local_store",
                path=str(settings.home / "images"),
                fix="set TS_IMAGE_STORE=s3://BUCKET/PREFIX so every API node serves the same images",
            )
        store = FileArtifactStore(settings.home / "images")
    return SignalImages(store, bars, max_pending=settings.image_max_pending)


def build_push(settings: Settings, engine: sa.Engine) -> PushService | None:
    """Web Push with the VAPID key of TS_VAPID_KEY_FILE; in embedded mode TS_HOME/vapid-key.pem,
    created 0600 at first start. Server mode never creates one (nodes must share it): without the
    setting, push is off on this node (its routes answer 503). Errors name the file, never the key."""
    from tradesignals.push.sender import PushSender
    from tradesignals.push.service import PushService
    from tradesignals.push.vapid import (
        KEY_FILE_NAME,
        VapidKeyError,
        is_private,
        load_keys,
        load_or_create_keys,
    )
    from tradesignals.storage.push import SqlPushStore

    try:
        if settings.vapid_key_file is not None and settings.mode is Mode.SERVER:
            keys, created = load_keys(settings.vapid_key_file), False
        elif settings.mode is Mode.SERVER:
            log.info("push.off", reason="no TS_VAPID_KEY_FILE in server mode")
            return None
        else:
            path = settings.vapid_key_file or settings.home / KEY_FILE_NAME
            keys, created = load_or_create_keys(path)
    except VapidKeyError as exc:
        raise ConfigError(f"VAPID key: {exc}") from None
    path = settings.vapid_key_file or settings.home / KEY_FILE_NAME
    if created:
        log.info("push.vapid_key_created", path=str(path), public_key=keys.public_key)
    elif not is_private(path):
        log.warning("push.vapid_key_readable_by_others", path=str(path), fix=f"chmod 600 {path}")
    store = SqlPushStore(engine)
    sender = PushSender(keys, settings.vapid_subject, store, allow_loopback=settings.push_allow_loopback)
    return PushService(keys, store, sender, allow_loopback=settings.push_allow_loopback)


def build_hub(settings: Settings) -> Hub:
    """This node's WebSocket hub over the channel log: Redis in server mode (every API node numbers
    and replays alike), in-process in embedded mode."""
    from tradesignals.api.channel_seq import ChannelLog, MemoryChannelLog, RedisChannelLog

    log_: ChannelLog
    if settings.mode is Mode.SERVER:
        log_ = RedisChannelLog(
            settings.redis_url,
            prefix=settings.bus_prefix,
            retention=settings.ws_retention,
            cluster=settings.redis_cluster,
        )
    else:
        log_ = MemoryChannelLog(retention=settings.ws_retention)
    return Hub(log_, client_queue=settings.ws_client_queue, replay_chunk=settings.ws_replay_chunk)


def build_news_feed(settings: Settings) -> NewsFeed | None:
    """The news source(s) TS_NEWS_FEED names; a bad one is a one-line ConfigError at start."""
    if settings.news_feed is None:
        return None
    from tradesignals.domain.news import NewsError
    from tradesignals.news.merge import MergedNewsFeed

    names = None
    if settings.company_tickers is not None:
        from tradesignals.news.names import CompanyNames

        try:
            names = CompanyNames.load(settings.company_tickers)
        except NewsError as exc:
            raise ConfigError(f"TS_COMPANY_TICKERS: {exc}") from None
    try:
        feeds = [_news_source(part, settings, names) for part in settings.news_feed.split("+")]
    except NewsError as exc:
        raise ConfigError(f"TS_NEWS_FEED: {exc}") from None
    return feeds[0] if len(feeds) == 1 else MergedNewsFeed(feeds)


def _news_source(spec: str, settings: Settings, names: CompanyNames | None = None) -> NewsFeed:
    kind, _, arg = spec.partition(":")
    if kind == "replay":
        from tradesignals.news.replay import ReplayNewsFeed

        return ReplayNewsFeed(arg, names=names)
    if kind == "polygon":
        from tradesignals.news.polygon import PolygonNewsFeed

        return PolygonNewsFeed(
            key=settings.polygon_key.get_secret_value(),
            tickers=[arg] if arg else (),
            base_url=settings.polygon_news_url,
            interval_s=settings.news_poll_s,
            names=names,
        )
    if kind == "alpaca":
        from tradesignals.news.alpaca import AlpacaNewsFeed

        return AlpacaNewsFeed(
            arg.split(",") if arg else ("*",),
            key=settings.alpaca_key.get_secret_value(),
            secret=settings.alpaca_secret.get_secret_value(),
            url=settings.alpaca_news_url,
        )
    from tradesignals.news.edgar import EdgarFilingsFeed

    return EdgarFilingsFeed(
        arg.split(","),
        user_agent=settings.sec_user_agent,
        base_url=settings.sec_url,
        interval_s=settings.news_poll_s,
    )


def build_news_scorer(settings: Settings) -> NewsScorer | None:
    """The sentiment model for TS_NEWS_FEED (trained from TS_DATA_DIR on first use), or None."""
    if settings.news_feed is None:
        return None
    from tradesignals.news.sentiment import MODEL_FILE, SentimentError, load_or_train

    path = settings.home / "models" / "sentiment" / MODEL_FILE
    try:
        model, trained = load_or_train(path, settings.data_dir)
    except SentimentError as exc:
        raise ConfigError(f"TS_NEWS_FEED: {exc}") from None
    if trained:
        log.info("news.sentiment_trained", path=str(path))
    return NewsScorer(model)


def _jwt_secret(settings: Settings) -> str:
    """TS_JWT_SECRET; embedded: TS_HOME/jwt-secret, created 0600 at first start. Server mode
    without one gets a per-process secret and a warning (tokens then die with the process and are
    not shared between nodes)."""
    import secrets

    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < 32:
            raise ConfigError("TS_JWT_SECRET must be at least 32 characters")
        return value
    if settings.mode is Mode.SERVER:
        log.warning("accounts.jwt_secret_unset", fix="set TS_JWT_SECRET (shared by every API node)")
        return secrets.token_urlsafe(48)
    path = settings.home / "jwt-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def build_payment_provider(settings: Settings) -> PaymentProvider:
    from tradesignals.accounts.billing import LocalProvider, StripeProvider

    if settings.payment_provider == "local":
        log.warning("billing.test_mode", provider="local", note="payments complete at once; no money moves")
        return LocalProvider()
    if (
        settings.stripe_api_key is None
        or settings.stripe_webhook_secret is None
        or not settings.stripe_premium_price_id
    ):
        raise ConfigError(
            "TS_PAYMENT_PROVIDER=stripe needs TS_STRIPE_API_KEY, TS_STRIPE_WEBHOOK_SECRET and TS_STRIPE_PREMIUM_PRICE_ID"
        )
    base = settings.public_url.rstrip("/")
    return StripeProvider(
        api_key=settings.stripe_api_key.get_secret_value(),
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
        premium_price_id=settings.stripe_premium_price_id,
        success_url=f"{base}/billing/success",
        cancel_url=f"{base}/billing/cancel",
        api_base=settings.stripe_api_base,
    )


def build_accounts(
    settings: Settings, engine: sa.Engine
) -> tuple[AccountService, BillingService, RateLimiter, OAuthSignIn]:
    from datetime import timedelta

    from tradesignals.accounts.billing import BillingService
    from tradesignals.accounts.oauth import OAuthSignIn, Provider, github, google
    from tradesignals.accounts.service import AccountService, AuthPolicy, RateLimiter
    from tradesignals.accounts.tokens import TokenCodec
    from tradesignals.storage.accounts import SqlAccountStore
    from tradesignals.storage.repositories import SqlUserRepository

    store = SqlAccountStore(engine)
    secret = _jwt_secret(settings)
    codec = TokenCodec(secret, ttl=timedelta(seconds=settings.access_token_ttl_s))
    policy = AuthPolicy(
        refresh_ttl=timedelta(days=settings.refresh_token_ttl_days),
        max_failures=settings.login_max_failures,
        lockout=timedelta(seconds=settings.login_lockout_s),
    )
    accounts = AccountService(SqlUserRepository(engine), store, codec, policy)
    billing = BillingService(
        build_payment_provider(settings),
        store,
        premium_price=settings.premium_price_usd,
        upgrade_price=settings.dynamic_price_usd,
        upgrade_for=timedelta(hours=settings.dynamic_duration_hours),
    )
    providers: dict[str, Provider] = {}
    if settings.oauth_google_client_id and settings.oauth_google_client_secret is not None:
        providers["google"] = google(
            settings.oauth_google_client_id,
            settings.oauth_google_client_secret.get_secret_value(),
            settings.oauth_api_base,
        )
    if settings.oauth_github_client_id and settings.oauth_github_client_secret is not None:
        providers["github"] = github(
            settings.oauth_github_client_id,
            settings.oauth_github_client_secret.get_secret_value(),
            settings.oauth_api_base,
        )
    oauth = OAuthSignIn(accounts, providers, secret=secret, redirect_base=settings.public_url)
    return accounts, billing, RateLimiter(settings.auth_rate_per_min), oauth


def build_signer(settings: Settings) -> Signer | None:
    """The key that signs ledger checkpoints (docs/ledger.md), or None where none is configured.

    TS_LEDGER_KEY, else TS_LEDGER_KEY_FILE; in embedded mode the file defaults to
    TS_HOME/ledger-key.pem and is created (mode 0600) at first start. Server mode never creates a
    key: nodes must share one, so it comes from a secret. Errors name the source, never the key.
    """
    from tradesignals.signing import (
        KEY_FILE_NAME,
        SigningKeyError,
        is_private,
        load_or_create_signer,
        load_signer,
        signer_from_text,
    )

    try:
        if settings.ledger_key is not None:
            return signer_from_text(settings.ledger_key.get_secret_value(), "TS_LEDGER_KEY")
        if settings.mode is Mode.SERVER:
            if settings.ledger_key_file is None:
                return None
            return load_signer(settings.ledger_key_file)
        path = settings.ledger_key_file or settings.home / KEY_FILE_NAME
        signer, created = load_or_create_signer(path)
    except SigningKeyError as exc:
        raise ConfigError(f"ledger signing key: {exc}") from None
    if created:
        log.info("ledger.key_created", path=str(path), public_key=signer.public_key)
    elif not is_private(path):
        log.warning("ledger.key_readable_by_others", path=str(path), fix=f"chmod 600 {path}")
    return signer


def _checkpointer(services: Services) -> Checkpointer:
    """The ledger writer's checkpointer, refused (ConfigError) without the key in force."""
    from tradesignals.engine.checkpointer import Checkpointer

    if services.signer is None:
        raise ConfigError(
            "the engine role signs ledger checkpoints and needs the key: set TS_LEDGER_KEY_FILE"
            " (or TS_LEDGER_KEY) in server mode"
        )
    checkpointer = Checkpointer(services.checkpoints, services.signer)
    try:
        checkpointer.check_key()
    except (ValueError, StorageError) as exc:
        raise ConfigError(f"ledger signing key: {exc}") from None
    return checkpointer


def _start_checkpoints(services: Services, checkpointer: Checkpointer) -> None:
    """Checkpoints at start, every interval, and at clean stop (a hook: after the engine stopped)."""
    from tradesignals.engine.checkpointer import run_checkpoints

    interval = services.settings.checkpoint_interval_s
    services.tasks.append(
        asyncio.create_task(run_checkpoints(checkpointer, services.stop, interval), name="checkpoints")
    )

    def final() -> None:
        checkpointer.checkpoint()

    services.on_close.append(final)


def build_bar_store(settings: Settings, engine: sa.Engine | None = None) -> BarStore:
    """Bar history: PostgreSQL when the app database is PostgreSQL, else Parquet under TS_HOME/lake."""
    if settings.db_url.startswith("postgresql"):
        from tradesignals.storage.timeseries_pg import PostgresBarStore

        return PostgresBarStore(engine if engine is not None else settings.db_url)
    from tradesignals.storage.timeseries_parquet import ParquetBarStore

    return ParquetBarStore(settings.home / "lake")


BINANCE_DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT")


def build_feed(settings: Settings) -> Feed:
    """The market-data feed named by ``TS_FEED``; a bad path, file or key fails here, before anything starts."""
    timeframe = Timeframe.parse(settings.feed_timeframe)
    kind = settings.feed_kind
    if kind == "sim":
        from tradesignals.marketdata.feeds.simulator import SimulatorFeed

        # Anchor the simulated clock at the wall clock (less the warm-up), so demo signals carry
        # current dates; the seed still fixes prices, so a run is reproducible up to its start time.
        warmup = 1600  # a full UTC day and more: session features (VWAP, previous-day context) need one
        now = time.time_ns()
        start = now - now % timeframe.ns - warmup * timeframe.ns
        return SimulatorFeed(
            settings.sim_symbols,
            seed=settings.sim_seed,
            speed=settings.speed,
            timeframe=timeframe,
            warmup_bars=warmup,
            start_ns=start,
            asset_class=settings.asset_class or "mix",
        )
    if kind == "replay":
        from tradesignals.marketdata.feeds.replay import ReplayFeed

        return ReplayFeed(Path(settings.feed.removeprefix("replay:")), speed=settings.speed)
    if kind == "binance":
        from tradesignals.marketdata.feeds.binance import BinanceFeed

        symbols = settings.feed_symbols or list(BINANCE_DEFAULT_SYMBOLS)
        return BinanceFeed(symbols, streams=("trade", f"kline_{timeframe.value}"), url=settings.binance_url)
    if kind == "alpaca":
        from tradesignals.marketdata.feeds.alpaca import AlpacaFeed

        key, secret = settings.alpaca_key.get_secret_value(), settings.alpaca_secret.get_secret_value()
        if not key or not secret:
            raise ConfigError("the alpaca feed needs TS_ALPACA_KEY and TS_ALPACA_SECRET")
        return AlpacaFeed(
            settings.feed_symbols,
            key=key,
            secret=secret,
            feed=settings.alpaca_feed,
            url=settings.alpaca_url,
        )
    if kind == "polygon":
        from tradesignals.marketdata.feeds.polygon import PolygonFeed

        key = settings.polygon_key.get_secret_value()
        if not key:
            raise ConfigError("the polygon feed needs TS_POLYGON_KEY")
        return PolygonFeed(settings.feed_symbols, key=key, url=settings.polygon_url)
    raise ConfigError(f"unknown feed {settings.feed!r}")


def _keep_online_state(services: Services, scorer: Scorer) -> None:
    """Resume the online adapter from its last snapshot and save it at shutdown.

    The snapshot is strict JSON next to the model version it adapts (never pickle), written to a
    temporary file and renamed, so a crash mid-write leaves the previous snapshot intact.
    """
    from tradesignals.engine.model_scorer import ModelScorer
    from tradesignals.models.online import OnlineAdapter

    if not isinstance(scorer, ModelScorer) or scorer.adapter is None:
        return
    meta = scorer.loaded.metadata
    path = services.settings.home / "models" / meta.name / f"online-{meta.version}.json"
    if path.exists():
        try:
            scorer.adapter = OnlineAdapter.from_json(path.read_text())
            log.info("engine.online_restored", path=str(path), updates=scorer.adapter.n_updates)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("engine.online_snapshot_unreadable", path=str(path), error=str(exc)[:200])

    def save() -> None:
        adapter = scorer.adapter
        if adapter is None:
            return
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(adapter.to_json())
        os.replace(tmp, path)

    services.on_close.append(save)


def start_roles(services: Services, roles: set[str], feed: Feed | None = None) -> None:
    """Start the background roles this process runs: ingest, engine, and the API's broadcaster."""
    from tradesignals.engine.pipeline import EngineService

    stop = services.stop
    settings = services.settings
    if "api" in roles:
        from tradesignals.api.broadcast import Router, fanout, market_status, relay
        from tradesignals.api.ops_metrics import watch_hub
        from tradesignals.marketdata.calendar import DEFAULT_EXCHANGE, exchange_calendar

        watch_hub(services.hub)

        hub = services.hub
        services.tasks.append(asyncio.create_task(fanout(hub.log, hub, stop), name="ws-fanout"))
        if settings.ws_port is not None:
            from tradesignals.api.ws_server import serve_fanout

            services.tasks.append(
                asyncio.create_task(serve_fanout(services, stop, services.ws_listening), name="ws-server")
            )
        exchanges = {DEFAULT_EXCHANGE: exchange_calendar(DEFAULT_EXCHANGE)}
        services.tasks.append(
            asyncio.create_task(market_status(hub.log, stop, exchanges), name="ws-market-status")
        )
        _billing_notices(services, asyncio.get_running_loop())
        for topic, (decode, route) in (
            Router(services.audience, services.bars, services.signals).routes().items()
        ):
            joined = hub.relays.setdefault(topic, asyncio.Event())
            services.tasks.append(
                asyncio.create_task(
                    relay(
                        services.bus,
                        hub.log,
                        topic,
                        decode,
                        route,
                        services.node_id,
                        stop,
                        joined,
                        lease_s=settings.bus_lease_s,
                    ),
                    name=f"ws-relay-{topic}",
                )
            )
        if services.push is not None:
            from tradesignals.push.worker import push_new_signals, push_signal_closes

            push = services.push
            services.tasks.append(
                asyncio.create_task(
                    push_new_signals(
                        services.bus,
                        push.sender,
                        push.store,
                        services.bars,
                        services.node_id,
                        stop,
                        settings.bus_lease_s,
                    ),
                    name="push-signals",
                )
            )
            services.tasks.append(
                asyncio.create_task(
                    push_signal_closes(
                        services.bus,
                        push.sender,
                        push.store,
                        services.signals,
                        services.node_id,
                        stop,
                        settings.bus_lease_s,
                    ),
                    name="push-events",
                )
            )
        if services.images is not None:
            from tradesignals.images.worker import render_signal_images

            # Off the engine's path: its own consumer group, its own render thread.
            services.tasks.append(
                asyncio.create_task(
                    render_signal_images(
                        services.bus, services.images, services.node_id, stop, lease_s=settings.bus_lease_s
                    ),
                    name="images",
                )
            )
    if "engine" in roles:
        checkpointer = _checkpointer(services)
        # The engine learns each bar's timeframe from the bar: a feed in this process only lets the
        # scorer for its timeframe be built (and fail) now rather than on the first bar.
        known = getattr(feed, "timeframe", None)
        warm = (known,) if isinstance(known, Timeframe) else ()

        def engine_service() -> EngineService:
            # The catalyst rule reads the news this process receives (the news task of the ingest role).
            news_here = services.news_feed is not None and "ingest" in roles
            engine = build_engine(
                settings,
                earnings=services.earnings,
                catalysts=services.catalysts if news_here else None,
                warm=warm,
                on_scorer=lambda scorer: _keep_online_state(services, scorer),
            )
            return EngineService(
                engine,
                services.bus,
                services.signals,
                name=f"engine-{services.node_id}",
                inputs=frozenset({settings.engine_input}),
                stop=stop,
                lease_seconds=settings.bus_lease_s,
                bus_retry_s=settings.bus_retry_s,
            )

        untrained = demo_models_missing(settings, warm)
        if untrained:
            # A fresh demo trains its first model: in a child process, so the API answers meanwhile
            # and the training has a GIL of its own. Bars wait on the bus (the engine's group starts
            # at the earliest entry); none is missed.
            async def train_then_run() -> None:
                log.info("engine.training_demo_model", timeframes=[tf.value for tf in untrained])
                try:
                    # Meanwhile this process imports what loading the model will need.
                    await asyncio.gather(
                        train_demo_models_apart(settings, untrained), asyncio.to_thread(_preload_engine)
                    )
                    service = engine_service()
                except Exception as exc:  # said now, not only at shutdown: the demo has no engine
                    log.error("engine.not_started", error=str(exc).splitlines()[0][:300])
                    raise
                await service.run()

            services.tasks.append(asyncio.create_task(train_then_run(), name="engine"))
        else:
            # Built now, so a missing or unusable model fails at start with one line.
            services.tasks.append(asyncio.create_task(engine_service().run(), name="engine"))
        _start_checkpoints(services, checkpointer)
    if "explain" in roles:
        _start_explain(services)
    if "ingest" in roles:
        from tradesignals.engine.recorder import record_bars

        services.tasks.append(
            asyncio.create_task(
                record_bars(
                    services.bus,
                    services.bars,
                    stop,
                    name=f"history-{services.node_id}",
                    retry_s=settings.bus_retry_s,
                    drain=services.feed_done,
                ),
                name="recorder",
            )
        )
        if feed is None:
            raise ConfigError("the ingest role needs a feed (TS_FEED)")
        validator = _validator(settings)
        services.tasks.append(asyncio.create_task(_ingest(feed, services, validator), name="ingest"))
        news_feed = services.news_feed
        if news_feed is not None and services.news is not None and services.news_scorer is not None:
            from tradesignals.news.pipeline import run_news

            # A replay is written in batches; a live source item by item, so each shows at once.
            replay_only = all(p.startswith("replay:") for p in (settings.news_feed or "").split("+"))
            batch = 200 if replay_only else 1
            services.tasks.append(
                asyncio.create_task(
                    run_news(
                        news_feed,
                        services.news_scorer,
                        services.news,
                        stop,
                        batch=batch,
                        features=_NewsSinks(services.news_features, services.catalysts),
                    ),
                    name="news",
                )
            )
    _start_metrics(services, roles)  # last: a role refused above leaves nothing running
    services.tasks.append(asyncio.create_task(_heartbeat(services, roles), name="registry"))


def _preload_engine() -> None:
    """Import the modules the engine builder loads lazily: the boosting libraries, the incremental
    features (TA-Lib) and the online adapter (river) — 6 s on two busy cores, paid while waiting."""
    from tradesignals.engine import model_scorer  # noqa: F401
    from tradesignals.features import incremental  # noqa: F401
    from tradesignals.models import online  # noqa: F401
    from tradesignals.models.registry import preload_libraries

    preload_libraries()


async def _heartbeat(services: Services, roles: set[str]) -> None:
    """Announce this process and its roles every ``TS_REGISTRY_HEARTBEAT_S``; leave on shutdown.

    The entry lapses after three missed beats, so a process killed with ``kill -9`` drops out of
    /api/health on its own. A failed beat is logged and retried at the next one: the registry
    reports, it never stops a role.
    """
    import contextlib

    from tradesignals import __version__

    every = services.settings.registry_heartbeat_s
    info = ProcessInfo(
        id=services.process_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        roles=tuple(sorted(roles)),
        started_at=services.started_at,
        version=__version__,
    )
    stop = services.stop
    while not stop.is_set():
        try:
            await services.registry.beat(info, ttl_s=3 * every)
        except BusError as exc:
            log.warning("registry.beat_failed", error=str(exc)[:200])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    with contextlib.suppress(BusError, TimeoutError):
        await asyncio.wait_for(services.registry.leave(services.process_id), timeout=1.0)


def _start_metrics(services: Services, roles: set[str]) -> None:
    """Keep the lag and up gauges fresh, and serve /metrics where no API does (TS_METRICS_PORT)."""
    settings = services.settings
    services.tasks.append(
        asyncio.create_task(
            _refresh_gauges(services, settings.metrics_interval_s, services.stop), name="metrics"
        )
    )
    if "api" in roles or settings.metrics_port is None:
        return
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as exc:
        raise ConfigError(
            f"TS_METRICS_PORT: port {settings.metrics_port} on {settings.metrics_host} cannot be bound ({exc.strerror})"
        ) from None
    log.info("metrics.serving", url=f"http://{settings.metrics_host}:{server.server_port}/metrics")
    services.on_close.append(server.shutdown)


async def _refresh_gauges(services: Services, interval_s: float, stop: asyncio.Event) -> None:
    """The health probes, every ``interval_s``: what Prometheus reads between two /api/health calls."""
    import contextlib

    while not stop.is_set():
        try:
            await services.check_health()
        except Exception as exc:  # a probe that fails is a gauge at 0, never a dead role
            log.warning("metrics.refresh_failed", error=str(exc)[:200])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


def _start_explain(services: Services) -> None:
    """The explain sidecar: explanations for new signals, research for upgraded ones (``llm/sidecar.py``)."""
    from tradesignals.llm.sidecar import Explainer, run_explain

    if services.llm_texts is None or services.news is None:
        raise ConfigError("the explain role needs the database (news and LLM results)")
    settings = services.settings
    explainer = Explainer(
        store=services.llm_texts,
        news=services.news,
        provider=services.llm_provider,
        prices=settings.llm_prices,
        bus=services.bus,
    )
    log.info(
        "explain.start",
        provider=settings.llm_provider,
        model=explainer.model,
        prompt_version=explainer.prompt_version,
    )
    services.tasks.append(
        asyncio.create_task(
            run_explain(
                explainer,
                services.bus,
                services.signals,
                services.stop,
                name=f"explain-{services.node_id}",
                upgrade_poll_s=settings.llm_upgrade_poll_s,
                concurrency=settings.llm_concurrency,
            ),
            name="explain",
        )
    )


@dataclass(frozen=True, slots=True)
class _NewsSinks:
    """Each scored item to the news features and to the catalyst rule's book."""

    features: NewsFeatureState
    catalysts: CatalystBook

    def add(self, scored: ScoredNews) -> None:
        self.features.add(scored)
        self.catalysts.add(scored)


def _billing_notices(services: Services, loop: asyncio.AbstractEventLoop) -> None:
    """Billing events to ``user:{id}:notifications``: the billing service applies them in a worker
    thread; each notice is appended to the channel log on this node's loop."""
    from tradesignals.domain.entitlements import user_channel

    hub = services.hub

    def notify(user_id: int, notice: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(
            hub.publish(user_channel(user_id, "notifications"), "billing", notice), loop
        )

    services.billing.listeners.append(notify)


LIVE_FEEDS = frozenset({"binance", "alpaca", "polygon"})


def _validator(settings: Settings) -> Validator:
    """The ingest role's validator, built when the role starts rather than in its task.

    Importing ``marketdata.validate`` registers ``ts_marketdata_*_total`` with every reason at 0;
    done before ``/metrics`` serves, a first scrape already lists them (an alert on a series that
    is absent would otherwise fire at every start).
    """
    from tradesignals.marketdata.validate import Validator

    # Live feeds are judged against the wall clock: a tick stamped in the future would otherwise
    # make every later tick of its symbol look out of order. Simulated and replayed time runs
    # ahead of or behind the wall clock by design, so they get no clock limits.
    live = settings.feed_kind in LIVE_FEEDS
    return Validator(max_future_ns=5 * 10**9) if live else Validator()


async def _ingest(feed: Feed, services: Services, validator: Validator) -> None:
    from tradesignals.engine.ingest import run_ingest

    positions = None
    if services.settings.mode is Mode.SERVER:
        # The bus outlives this process only in server mode: there a restart resumes (ADR 0025).
        from tradesignals.storage.ingest_positions import SqlIngestPositions

        positions = SqlIngestPositions(services.db)
    try:
        await run_ingest(
            feed,
            services.bus,
            validator,
            services.stop,
            positions=positions,
            retry_s=services.settings.bus_retry_s,
        )
        services.feed_done.set()
    finally:
        await feed.close()


__all__ = [
    "Check",
    "Services",
    "build_bar_store",
    "build_engine",
    "build_feed",
    "build_hub",
    "build_llm_provider",
    "build_scorer",
    "build_services",
    "model_name_for",
    "model_registry",
    "start_roles",
]
