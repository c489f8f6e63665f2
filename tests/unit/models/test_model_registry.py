"""Model artifacts: round trip, the latest pointer, crash safety and one-line errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tradesignals import __version__
from tradesignals.models import registry as registry_module
from tradesignals.models.inference import (
    IsotonicCalibrator,
    LogisticMember,
    Member,
    NotWarm,
    Scorer,
    TreeMember,
)
from tradesignals.models.registry import ModelRegistry, ModelRegistryError

NAMES = ["ret_1", "ret_5", "rsi_14", "atr_14", "vol_z", "sma_200_gap"]
FEATURE_SET = {"name": "daily-core", "version": 3, "fingerprint": "sha256:abc123"}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(NAMES)))
    y = (x[:, 0] - x[:, 2] + rng.normal(size=400) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(x, y, feature_name=NAMES),
        num_boost_round=10,
    )
    xbooster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(x, y, feature_names=NAMES),
        num_boost_round=10,
    )
    xi = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(xi, y)
    members: list[Member] = [
        TreeMember.from_lightgbm(booster),
        TreeMember.from_xgboost(xbooster),
        LogisticMember.from_sklearn(pipe),
    ]
    raw = Scorer(members, feature_names=NAMES, weights=[0.5, 0.25, 0.25], warm=False)
    iso = IsotonicRegression(out_of_bounds="clip").fit(raw.score_batch(x).probability, y)
    return Scorer(
        members,
        feature_names=NAMES,
        weights=[0.5, 0.25, 0.25],
        calibrator=IsotonicCalibrator.from_sklearn(iso),
        required_features=["sma_200_gap"],
    )


def _save(reg: ModelRegistry, scorer: Scorer, **kw: Any) -> str:
    meta = reg.save(
        "swing",
        scorer,
        feature_set=FEATURE_SET,
        training_range=(datetime(2013, 2, 8, tzinfo=UTC), "2017-12-29T00:00:00+00:00"),
        symbols=["AAPL", "MSFT"],
        signal_type="swing",
        metrics={"auc": np.float64(0.55), "ece": 0.02, "precision_at_threshold": float("nan")},
        **kw,
    )
    return meta.version


def _queries(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(9)
    q = rng.normal(size=(n, len(NAMES)))
    q[rng.random(q.shape) < 0.1] = np.nan
    return q


def _one_line_naming(err: pytest.ExceptionInfo[ModelRegistryError], path: Path) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg


def test_round_trip_scores_identically(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    loaded = reg.load("swing")
    assert loaded.version == version
    q = _queries()
    before, after = scorer.score_batch(q), loaded.scorer.score_batch(q)
    np.testing.assert_array_equal(after.probability, before.probability)
    np.testing.assert_array_equal(after.members, before.members)
    np.testing.assert_array_equal(after.warm, before.warm)
    assert not after.warm.all() and after.warm.any()  # the required feature travelled
    # the loaded reference path (libraries + numpy formulas) agrees with the fast path
    ref = loaded.scorer.reference_predict(q)
    np.testing.assert_allclose(ref.probability, after.probability, rtol=0, atol=1e-6, equal_nan=True)
    row = q[np.flatnonzero(~after.warm)[0]]
    assert loaded.scorer.score_row(row) == NotWarm(("sma_200_gap",))
    assert loaded.scorer.member_names == scorer.member_names
    assert loaded.scorer.weights == scorer.weights


def test_metadata_records_where_the_model_came_from(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}", version)
    meta = reg.load("swing", version).metadata
    assert meta.feature_set == FEATURE_SET
    assert meta.training_range == ("2013-02-08T00:00:00+00:00", "2017-12-29T00:00:00+00:00")
    assert meta.symbols == ("AAPL", "MSFT") and meta.signal_type == "swing"
    assert meta.metrics == {"auc": 0.55, "ece": 0.02, "precision_at_threshold": None}  # NaN -> null
    assert meta.code["tradesignals"] == __version__
    assert "git_commit" in meta.code
    assert {"lightgbm", "numpy", "python"} <= meta.libraries.keys()
    assert meta.members == ("lightgbm", "xgboost", "logistic")
    assert datetime.fromisoformat(meta.created_at).tzinfo is not None


def test_artifact_is_inspectable_text_without_pickle(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    vdir = tmp_path / "models" / "swing" / version
    assert sorted(p.name for p in vdir.iterdir()) == [
        "ensemble.json",  # feature names, weights, logistic coefficients + scaler, calibrator
        "lightgbm.txt",
        "metadata.json",
        "xgboost.json",
    ]
    for p in vdir.iterdir():
        text = p.read_text(encoding="utf-8")  # all text
        if p.suffix == ".json":
            json.loads(text)
    ensemble = json.loads((vdir / "ensemble.json").read_text())
    assert ensemble["feature_names"] == NAMES
    assert [m["kind"] for m in ensemble["members"]] == ["lightgbm", "xgboost", "logistic"]
    assert ensemble["calibrator"]["kind"] == "isotonic"
    assert (vdir / "lightgbm.txt").read_text().startswith("tree")


def test_latest_pointer_follows_saves_and_rollbacks(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    assert reg.list_versions("swing") == []
    v1 = _save(reg, scorer)
    v2 = _save(reg, scorer)
    assert v1 < v2  # time-sortable ids
    assert reg.list_versions("swing") == [v1, v2]
    assert reg.latest_version("swing") == v2 and reg.load("swing").version == v2
    v3 = _save(reg, scorer, make_latest=False)
    assert reg.latest_version("swing") == v2
    assert reg.load("swing", v3).version == v3
    reg.set_latest("swing", v1)
    assert reg.load("swing").version == v1
    assert (tmp_path / "models" / "swing" / "latest").read_text().strip() == v1


def test_crash_while_writing_files_leaves_latest_on_the_old_version(
    tmp_path: Path, scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    v1 = _save(reg, scorer)
    real_write = registry_module._write_file
    calls = {"n": 0}

    def flaky_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(registry_module, "_write_file", flaky_write)
    with pytest.raises(OSError, match="disk full"):
        _save(reg, scorer)
    monkeypatch.undo()
    assert calls["n"] == 3  # it did fail part-way through the version's files
    assert reg.list_versions("swing") == [v1]
    assert reg.load("swing").version == v1
    assert [p.name for p in (tmp_path / "models" / "swing").iterdir() if p.name.startswith(".")] == []


def test_crash_between_publish_and_pointer_leaves_latest_on_the_old_version(
    tmp_path: Path, scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    v1 = _save(reg, scorer)

    def die(*args: Any) -> None:
        raise KeyboardInterrupt  # the process is going away

    monkeypatch.setattr(reg.store, "set_pointer", die)
    with pytest.raises(KeyboardInterrupt):
        _save(reg, scorer)
    monkeypatch.undo()
    assert reg.load("swing").version == v1
    assert len(reg.list_versions("swing")) == 2  # the new version is complete, just not latest


def test_leftover_temp_dir_from_a_killed_process_is_invisible(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    v1 = _save(reg, scorer)
    # What kill -9 during publish leaves behind: a temp dir with some files and no rename.
    partial = tmp_path / "models" / "swing" / ".tmp-20991231T000000.000000Z-abcdef-1234"
    partial.mkdir()
    (partial / "ensemble.json").write_text("{")
    (tmp_path / "models" / "swing" / ".latest.tmp-dead").write_text("20991231T000000.000000Z-abcdef\n")
    assert reg.list_versions("swing") == [v1]
    assert reg.load("swing").version == v1


def test_corrupt_model_file_is_a_one_line_error_naming_it(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    path = tmp_path / "models" / "swing" / version / "lightgbm.txt"
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelRegistryError, match="corrupt") as err:
        reg.load("swing")
    _one_line_naming(err, path)


def test_corrupt_metadata_is_a_one_line_error_naming_it(tmp_path: Path, scorer: Scorer) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    path = tmp_path / "models" / "swing" / version / "metadata.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(ModelRegistryError, match="corrupt metadata") as err:
        reg.load("swing")
    _one_line_naming(err, path)


def test_missing_file_unknown_version_and_no_latest_are_one_line_errors(
    tmp_path: Path, scorer: Scorer
) -> None:
    reg = ModelRegistry.at_home(tmp_path)
    with pytest.raises(ModelRegistryError, match="no latest version") as err:
        reg.load("swing")
    _one_line_naming(err, tmp_path / "models" / "swing" / "latest")
    version = _save(reg, scorer)
    unknown = "20000101T000000.000000Z-000000"
    with pytest.raises(ModelRegistryError, match="no such model version") as err:
        reg.load("swing", unknown)
    _one_line_naming(err, tmp_path / "models" / "swing" / unknown)
    with pytest.raises(ModelRegistryError, match="not a version id"):
        reg.load("swing", "../../etc")
    with pytest.raises(ModelRegistryError, match="invalid name"):
        reg.load("../swing")
    path = tmp_path / "models" / "swing" / version / "xgboost.json"
    path.unlink()
    with pytest.raises(ModelRegistryError, match="missing file") as err:
        reg.load("swing")
    _one_line_naming(err, path)


def test_unparseable_model_with_valid_checksum_is_a_one_line_error(tmp_path: Path, scorer: Scorer) -> None:
    """A file the library rejects (say, written by a newer version) still gives one line with the path."""
    reg = ModelRegistry.at_home(tmp_path)
    version = _save(reg, scorer)
    vdir = tmp_path / "models" / "swing" / version
    bad = b"not a lightgbm model\nat all\n"
    (vdir / "lightgbm.txt").write_bytes(bad)
    meta = json.loads((vdir / "metadata.json").read_text())
    meta["files"]["lightgbm.txt"] = hashlib.sha256(bad).hexdigest()
    (vdir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelRegistryError, match="cannot build the scorer") as err:
        reg.load("swing")
    _one_line_naming(err, vdir)


class MemoryStore:
    """The smallest ArtifactStore: what an object store must provide, nothing more."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def location(self, name: str, version: str | None = None, filename: str | None = None) -> str:
        return "mem://" + "/".join(p for p in (name, version, filename) if p is not None)

    def publish(self, name: str, version: str, files: Mapping[str, bytes]) -> None:
        for filename, data in files.items():
            self.objects[self.location(name, version, filename)] = data

    def read(self, name: str, version: str, filename: str) -> bytes:
        key = self.location(name, version, filename)
        if key not in self.objects:
            raise ModelRegistryError(f"{key}: missing")
        return self.objects[key]

    def versions(self, name: str) -> list[str]:
        prefix = self.location(name) + "/"
        return [
            k[len(prefix) :].split("/")[0]
            for k in self.objects
            if k.startswith(prefix) and k.endswith("/metadata.json")
        ]

    def get_pointer(self, name: str, pointer: str) -> str | None:
        data = self.objects.get(self.location(name, None, pointer))
        return None if data is None else data.decode()

    def set_pointer(self, name: str, pointer: str, version: str) -> None:
        self.objects[self.location(name, None, pointer)] = version.encode()


def test_registry_works_over_any_artifact_store(scorer: Scorer) -> None:
    store = MemoryStore()
    reg = ModelRegistry(store)
    version = _save(reg, scorer)
    assert reg.list_versions("swing") == [version]
    assert f"mem://swing/{version}/lightgbm.txt" in store.objects
    q = _queries()
    np.testing.assert_array_equal(
        reg.load("swing").scorer.score_batch(q).probability, scorer.score_batch(q).probability
    )
    with pytest.raises(ModelRegistryError, match="mem://swing/latest"):
        ModelRegistry(MemoryStore()).load("swing")
