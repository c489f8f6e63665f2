from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.wiring import Services, build_services


@pytest.fixture
def services(tmp_path: Path) -> Services:
    settings = load_settings(home=tmp_path, mode="embedded")
    return asyncio.run(build_services(settings))


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c
