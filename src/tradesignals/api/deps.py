"""Typed dependencies, so a route's signature says what it needs and OpenAPI stays exact.

The API is handed its services ready-made by the wiring (the one place that chooses
implementations); it knows them only by the ``AppServices`` protocol below, so it never imports the
wiring and the wiring may import the API (its hub, its broadcasters) without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request

from tradesignals.accounts.billing import BillingService
from tradesignals.accounts.oauth import OAuthSignIn
from tradesignals.accounts.service import AccountService, RateLimiter
from tradesignals.api.hub import Hub
from tradesignals.bus.registry import LiveProcess, RoleLag
from tradesignals.config import Settings
from tradesignals.domain.checkpoints import Signer
from tradesignals.domain.research import SignalText
from tradesignals.images.service import SignalImages
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.push.service import PushService
from tradesignals.storage.audience import SqlAudience
from tradesignals.storage.base import CheckpointRepository, NewsRepository, SignalRepository
from tradesignals.storage.timeseries import BarStore


class HealthCheck(Protocol):
    """One service's answer to a health probe."""

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    @property
    def gates(self) -> bool:
        """Whether a failure of this check makes the node answer 503 (not ready)."""
        ...


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What ``/api/health`` shows: the probes, each role's group lag, the live processes."""

    checks: Mapping[str, HealthCheck]
    groups: Sequence[RoleLag]
    processes: Sequence[LiveProcess] | None  # None: the registry could not be read


class NewsFeaturesReader(Protocol):
    def features(self, symbol: str, at_ns: int) -> dict[str, float]: ...


class LlmTextReader(Protocol):
    """The explain sidecar's stored texts (``storage.llm.SqlLlmStore``)."""

    def latest(self, signal_id: str, kind: str) -> SignalText | None: ...


class AppServices(Protocol):
    """What the API needs of a node's services (``wiring.Services`` is the implementation)."""

    settings: Settings
    signals: SignalRepository
    bars: BarStore
    audience: SqlAudience
    hub: Hub
    checkpoints: CheckpointRepository
    signer: Signer | None
    news: NewsRepository | None
    images: SignalImages | None
    push: PushService | None

    @property
    def llm_texts(self) -> LlmTextReader | None: ...

    @property
    def news_features(self) -> NewsFeaturesReader: ...

    accounts: AccountService
    billing: BillingService
    auth_limiter: RateLimiter
    oauth: OAuthSignIn

    async def check_health(self) -> Mapping[str, HealthCheck]: ...

    async def health_report(self) -> HealthReport: ...

    def start_roles(self, roles: set[str], feed: Feed | None = None) -> None: ...

    async def close(self) -> None: ...


def get_services(request: Request) -> AppServices:
    return cast(AppServices, request.app.state.services)


def get_signal_repo(request: Request) -> SignalRepository:
    return get_services(request).signals


def get_checkpoint_repo(request: Request) -> CheckpointRepository:
    return get_services(request).checkpoints


ServicesDep = Annotated[AppServices, Depends(get_services)]
SignalRepoDep = Annotated[SignalRepository, Depends(get_signal_repo)]
CheckpointRepoDep = Annotated[CheckpointRepository, Depends(get_checkpoint_repo)]
