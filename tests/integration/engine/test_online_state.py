"""The online adapter survives a restart: saved as JSON at shutdown, restored at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from tradesignals.config import load_settings
from tradesignals.demo_model import ensure_demo_model
from tradesignals.domain.market import Timeframe
from tradesignals.engine.model_scorer import ModelScorer
from tradesignals.wiring import _keep_online_state, build_services


def test_snapshot_saved_on_close_and_restored(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, sim_symbols=4)
    ensure_demo_model(settings, Timeframe.M1, "day", bars_per_symbol=800)

    async def run_once(learn: bool) -> int:
        services = await build_services(settings)
        from tradesignals.models.registry import ModelRegistry

        scorer = ModelScorer(ModelRegistry.at_home(tmp_path).load("day"), Timeframe.M1, min_edge=-1.0)
        _keep_online_state(services, scorer)
        assert scorer.adapter is not None
        seen = scorer.adapter.n_updates
        if learn:
            x = np.zeros(len(scorer.feature_names))
            for won in (True, False, True):
                scorer.adapter.learn(x, won, p_batch=0.5)
        await services.close()
        return seen

    assert asyncio.run(run_once(learn=True)) == 0
    snapshots = list((tmp_path / "models" / "day").glob("online-*.json"))
    assert len(snapshots) == 1 and not list((tmp_path / "models" / "day").glob("*.tmp"))
    assert asyncio.run(run_once(learn=False)) == 3
