"""The demo's first model is trained in a child process: it lands in the registry, and a failure
comes back as one line (a RuntimeError the engine task logs), never as a child's traceback."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe
from tradesignals.models.registry import ModelRegistry
from tradesignals.wiring.engine_builder import demo_models_missing, train_demo_models_apart


def test_the_child_trains_the_missing_model_into_the_parents_registry(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, sim_symbols=4, model="auto", feed="sim", train_demo_model=True)
    assert demo_models_missing(settings, (Timeframe.M1,)) == [Timeframe.M1]
    asyncio.run(train_demo_models_apart(settings, [Timeframe.M1]))
    assert demo_models_missing(settings, (Timeframe.M1,)) == []
    assert ModelRegistry.at_home(tmp_path).latest_version("day") is not None


def test_a_failed_training_is_one_line_and_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "not-a-directory"
    home.write_text("a file where the models would go")
    settings = load_settings(home=home, sim_symbols=4, model="auto", feed="sim", train_demo_model=True)
    with pytest.raises(RuntimeError, match=r"^training the demo model failed: \w+Error: ") as failed:
        asyncio.run(train_demo_models_apart(settings, [Timeframe.M1]))
    assert "\n" not in str(failed.value)
    assert "Traceback" not in capfd.readouterr().err


def test_a_cancelled_wait_ends_the_child(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, sim_symbols=4, model="auto", feed="sim", train_demo_model=True)

    def training_children() -> list[multiprocessing.process.BaseProcess]:
        return [p for p in multiprocessing.active_children() if p.name == "ts-demo-training"]

    async def run() -> None:
        task = asyncio.create_task(train_demo_models_apart(settings, [Timeframe.M1]))
        deadline = asyncio.get_running_loop().time() + 30
        while not training_children():  # cancelled once the child runs; its training takes seconds more
            assert asyncio.get_running_loop().time() < deadline, "the training child never started"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert training_children() == []
    assert ModelRegistry.at_home(tmp_path).latest_version("day") is None
