"""A local LLM server (fake_llm.FakeLlm) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_llm import FakeLlm


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    server = FakeLlm()
    yield server
    server.close()
