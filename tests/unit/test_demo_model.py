from pathlib import Path

from tradesignals.config import load_settings
from tradesignals.demo_model import ensure_demo_model
from tradesignals.domain.market import Timeframe
from tradesignals.engine.model_scorer import ModelScorer
from tradesignals.models.registry import ModelRegistry


def test_trains_once_on_simulated_history_and_the_engine_can_score_with_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, sim_symbols=6)
    assert ensure_demo_model(settings, Timeframe.M1, "day", bars_per_symbol=900) is True
    registry = ModelRegistry.at_home(tmp_path)
    first = registry.latest_version("day")
    assert first is not None
    assert ensure_demo_model(settings, Timeframe.M1, "day", bars_per_symbol=900) is False
    assert registry.list_versions("day") == [first]
    loaded = registry.load("day")
    assert loaded.metadata.signal_type == "day"
    assert all(s.startswith("SIM") for s in loaded.metadata.symbols)
    scorer = ModelScorer(loaded, Timeframe.M1, min_edge=-1.0)
    assert scorer.version == f"day:{first}"
