"""The prequential replay of the online recalibration: no row is scored with its own outcome, and
on a batch model that went stale the recalibration closes part of the gap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradesignals.models.metrics import equal_mass_ece
from tradesignals.models.online import OnlineAdapter
from tradesignals.models.prequential import prequential_online

DAY = 86_400 * 10**9
NAMES = ["f0", "f1"]


def stale_world(n_days: int, per_day: int, seed: int) -> tuple[np.ndarray, ...]:
    """The batch model says 0.2; the world hits 0.45 of the time; labels resolve 5 days later."""
    rng = np.random.default_rng(seed)
    ts = np.repeat(np.arange(n_days), per_day).astype(np.int64) * DAY
    x = rng.standard_normal((ts.size, 2))
    y = (rng.random(ts.size) < 0.45).astype(float)
    return np.full(ts.size, 0.2), x, y, ts, ts + 5 * DAY


class Spy(OnlineAdapter):
    """Records, at each blend, which outcomes had been learnt."""

    log: list[tuple[str, int]]

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(names)
        self.log = []

    def learn(self, features, won, *, p_batch=None):  # type: ignore[no-untyped-def]
        self.log.append(("learn", round(float(np.asarray(features)[0]) * 1e6)))
        super().learn(features, won, p_batch=p_batch)

    def blend(self, p_batch, features):  # type: ignore[no-untyped-def]
        self.log.append(("score", round(float(np.asarray(features)[0]) * 1e6)))
        return super().blend(p_batch, features)


def test_each_row_is_scored_before_its_outcome_is_learnt_and_only_resolved_outcomes_are() -> None:
    p, x, y, ts, t_end = stale_world(30, 4, seed=0)
    x[:, 0] = np.arange(ts.size) / 1e6  # a row id the spy can read back
    spies: list[Spy] = []

    def make(names: Sequence[str]) -> Spy:
        spies.append(Spy(names))
        return spies[0]

    out = prequential_online(p, x, y, ts, t_end, NAMES, adapter=make)
    log = spies[0].log
    scored_at = {row: i for i, (kind, row) in enumerate(log) if kind == "score"}
    learnt_at = {row: i for i, (kind, row) in enumerate(log) if kind == "learn"}
    assert len(scored_at) == ts.size
    for row, i in learnt_at.items():
        assert scored_at[row] < i  # scored first
        # learnt before any row whose time is later than its label's end, and after none earlier
        later = [scored_at[r] for r in range(ts.size) if ts[r] > t_end[row]]
        assert all(i < s for s in later)
        not_yet = [scored_at[r] for r in range(ts.size) if ts[r] <= t_end[row]]
        assert all(i > s for s in not_yet)
    assert out.learned == len(learnt_at) == int((t_end < ts.max()).sum())


def test_on_a_stale_batch_model_the_recalibration_cuts_the_equal_mass_ece() -> None:
    p, x, y, ts, t_end = stale_world(400, 20, seed=1)
    out = prequential_online(p, x, y, ts, t_end, NAMES)
    before, after = equal_mass_ece(y, p), equal_mass_ece(y, out.p)
    assert before is not None and after is not None
    assert before > 0.2 and after < before - 0.03
    assert out.weight[ts <= 5 * DAY].max() == 0.0  # no label resolved before day 6
    assert out.weight[ts == 6 * DAY].min() > 0.0
    assert 0.0 < out.weight.max() <= 0.2 and np.abs(out.p - p).max() <= 0.2 + 1e-12
