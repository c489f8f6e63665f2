"""Signal images in the object store: S3 (a local moto server, through boto3) and TS_HOME.

Several nodes share one store: the first stored copy is the copy, a second renderer finds it, and a
node that never rendered serves it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.images.service import FILENAME, NAME, SignalImages
from tradesignals.models.artifacts_s3 import COMPLETE, S3ArtifactStore
from tradesignals.models.registry import FileArtifactStore
from tradesignals.storage.timeseries_parquet import ParquetBarStore

T = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SIGNAL = Signal(
    id="0123456789abcdef012345",
    symbol="SIM001",
    type=SignalType.SWING,
    direction=Direction.SHORT,
    entry=50.0,
    stop=52.0,
    targets=(48.0, 46.0, 44.0),
    confidence=0.41,
    created_at=T,
    expires_at=T + timedelta(days=3),
    model_version="m",
    decided_at=T,
)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3ArtifactStore:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"images-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3ArtifactStore(bucket, "images", endpoint_url=s3_endpoint)


def test_rendered_once_into_s3_and_served_by_another_node(s3: S3ArtifactStore, tmp_path: Path) -> None:
    bars = ParquetBarStore(tmp_path / "lake")
    node_a, node_b = SignalImages(s3, bars), SignalImages(s3, bars)
    try:
        first = asyncio.run(node_a.ensure(SIGNAL))
        assert node_b.load(SIGNAL.id) == first  # node B never rendered: it reads A's copy
        assert asyncio.run(node_b.ensure(SIGNAL)) == first and node_b.stats.rendered == 0
        keys = {o["Key"] for o in s3._s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
        assert keys == {f"images/{NAME}/{SIGNAL.id}/{FILENAME}", f"images/{NAME}/{SIGNAL.id}/{COMPLETE}"}
        # a second render of the same signal (two workers racing) keeps the stored copy
        again = node_b.render_and_store(SIGNAL)
        assert again == first
    finally:
        node_a.close()
        node_b.close()
        bars.close()


def test_a_half_uploaded_image_is_not_served(s3: S3ArtifactStore, tmp_path: Path) -> None:
    """The chart's bytes without the completion marker (a crash mid-upload) count as not rendered."""
    s3._s3.put_object(Bucket=s3.bucket, Key=f"images/{NAME}/{SIGNAL.id}/{FILENAME}", Body=b"partial")
    bars = ParquetBarStore(tmp_path / "lake")
    images = SignalImages(s3, bars)
    try:
        assert images.load(SIGNAL.id) is None
    finally:
        images.close()
        bars.close()


def test_two_renderers_of_one_file_store_agree(tmp_path: Path) -> None:
    bars = ParquetBarStore(tmp_path / "lake")
    store = FileArtifactStore(tmp_path / "images")
    a, b = SignalImages(store, bars), SignalImages(store, bars)
    try:
        img = a.render_and_store(SIGNAL)
        assert b.render_and_store(SIGNAL) == img  # found, not rendered again
        assert b.stats.rendered == 0
        assert (tmp_path / "images" / NAME / SIGNAL.id / FILENAME).read_bytes() == img.data
    finally:
        a.close()
        b.close()
        bars.close()


def test_ts_image_store_puts_them_in_s3(s3: S3ArtifactStore, s3_endpoint: str, tmp_path: Path) -> None:
    from tradesignals.config import load_settings
    from tradesignals.wiring import build_images

    settings = load_settings(
        home=tmp_path, image_store=f"s3://{s3.bucket}/shared", s3_endpoint_url=s3_endpoint
    )
    bars = ParquetBarStore(tmp_path / "lake")
    images = build_images(settings, bars)
    try:
        assert isinstance(images.store, S3ArtifactStore) and images.store.prefix == "shared"
        stored = images.render_and_store(SIGNAL)
        assert (
            S3ArtifactStore(s3.bucket, "shared", endpoint_url=s3_endpoint).read(NAME, SIGNAL.id, FILENAME)
            == stored.data
        )
        assert not (tmp_path / "images").exists()
    finally:
        images.close()
        bars.close()
