"""Typed dependencies, so a route's signature says what it needs and OpenAPI stays exact."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from tradesignals.storage.base import CheckpointRepository, SignalRepository
from tradesignals.wiring import Services


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def get_signal_repo(request: Request) -> SignalRepository:
    return get_services(request).signals


def get_checkpoint_repo(request: Request) -> CheckpointRepository:
    return get_services(request).checkpoints


ServicesDep = Annotated[Services, Depends(get_services)]
SignalRepoDep = Annotated[SignalRepository, Depends(get_signal_repo)]
CheckpointRepoDep = Annotated[CheckpointRepository, Depends(get_checkpoint_repo)]
