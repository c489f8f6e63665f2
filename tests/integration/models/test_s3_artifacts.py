"""The registry on an S3-compatible object store, through boto3, against a local S3 server (moto)."""

from __future__ import annotations

import uuid

import boto3
import lightgbm as lgb
import numpy as np
import pytest

from tradesignals.models.artifacts_s3 import COMPLETE, S3ArtifactStore
from tradesignals.models.inference import Scorer, TreeMember
from tradesignals.models.registry import ModelRegistry, ModelRegistryError

NAMES = ("a", "b", "c")


@pytest.fixture
def store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3ArtifactStore:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3ArtifactStore(bucket, "prod/models", endpoint_url=s3_endpoint)


def tiny_scorer() -> Scorer:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] > 0).astype(float)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4, "num_threads": 1},
                        lgb.Dataset(x, y, feature_name=list(NAMES)), num_boost_round=5)  # fmt: skip
    return Scorer([TreeMember.from_lightgbm(booster)], feature_names=NAMES)


def save(reg: ModelRegistry, scorer: Scorer) -> str:
    meta = reg.save("swing", scorer, feature_set={"name": "core", "version": 2, "fingerprint": "f" * 64},
                    training_range=("2020-01-01", "2020-12-31"), symbols=["X"], signal_type="swing", metrics={})  # fmt: skip
    return meta.version


def test_saved_model_loads_and_scores_identically(store: S3ArtifactStore) -> None:
    reg = ModelRegistry(store)
    scorer = tiny_scorer()
    version = save(reg, scorer)
    assert reg.latest_version("swing") == version
    loaded = reg.load("swing")
    x = np.random.default_rng(9).normal(size=(50, 3))
    np.testing.assert_array_equal(loaded.scorer.score_batch(x).probability, scorer.score_batch(x).probability)
    assert store.location("swing", version).startswith(f"s3://{store.bucket}/prod/models/swing/")


def test_a_half_uploaded_version_is_invisible_and_latest_is_unchanged(store: S3ArtifactStore) -> None:
    reg = ModelRegistry(store)
    first = save(reg, tiny_scorer())
    # An upload that died before its completion marker: files present, marker absent.
    store._s3.put_object(
        Bucket=store.bucket,
        Key=store._key("swing", "20991231T000000.000000Z-dead00", "ensemble.json"),
        Body=b"{}",
    )
    assert "20991231T000000.000000Z-dead00" not in store.versions("swing")
    assert reg.latest_version("swing") == first
    with pytest.raises(ModelRegistryError, match="no such model version"):
        store.read("swing", "20991231T000000.000000Z-dead00", "ensemble.json")
    with pytest.raises(ModelRegistryError, match="reserved"):
        store.publish("swing", "v", {COMPLETE: b""})


def test_missing_file_and_unreachable_store_are_one_line_errors(store: S3ArtifactStore) -> None:
    reg = ModelRegistry(store)
    version = save(reg, tiny_scorer())
    with pytest.raises(ModelRegistryError) as info:
        store.read("swing", version, "nope.txt")
    assert "missing file in model artifact" in str(info.value) and "\n" not in str(info.value)
    dead = S3ArtifactStore("b", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ModelRegistryError) as info2:
        dead.versions("swing")
    assert str(info2.value).startswith("s3://b/models/swing: cannot list") and "\n" not in str(info2.value)
