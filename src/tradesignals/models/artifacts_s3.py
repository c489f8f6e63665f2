"""Model artifacts in an S3-compatible object store (server mode), behind `ArtifactStore`.

Layout under ``s3://BUCKET/PREFIX``: ``NAME/VERSION/FILE`` for each file, then
``NAME/VERSION/_COMPLETE`` written last — a version without it is invisible, so a crash mid-upload
never yields a half artifact (S3 has no directory rename; the marker is the commit). Pointers
(``NAME/_pointers/latest``) are one small object; a single PUT replaces it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tradesignals.models.registry import ModelRegistryError

COMPLETE = "_COMPLETE"


class S3ArtifactStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "models",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3}),
        )

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def location(self, name: str, version: str | None = None, filename: str | None = None) -> str:
        return f"s3://{self.bucket}/{self._key(name, version or '', filename or '')}"

    def publish(self, name: str, version: str, files: Mapping[str, bytes]) -> None:
        if COMPLETE in files:
            raise ModelRegistryError(f"{self.location(name, version)}: {COMPLETE} is reserved")
        if self._complete(name, version):
            raise ModelRegistryError(f"{self.location(name, version)}: version already exists")
        try:
            for filename, data in files.items():
                self._s3.put_object(Bucket=self.bucket, Key=self._key(name, version, filename), Body=data)
            self._s3.put_object(Bucket=self.bucket, Key=self._key(name, version, COMPLETE), Body=b"")
        except (ClientError, BotoCoreError) as exc:
            raise ModelRegistryError(f"{self.location(name, version)}: upload failed ({_why(exc)})") from None

    def _complete(self, name: str, version: str) -> bool:
        """Whether ``name/version`` is committed: one HEAD of its marker, not a listing of every
        version (signal images keep one version per signal, so a listing grows without bound)."""
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(name, version, COMPLETE))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise ModelRegistryError(f"{self.location(name, version)}: cannot read ({_why(exc)})") from None
        except BotoCoreError as exc:
            raise ModelRegistryError(f"{self.location(name, version)}: cannot read ({_why(exc)})") from None
        return True

    def read(self, name: str, version: str, filename: str) -> bytes:
        if not self._complete(name, version):
            raise ModelRegistryError(f"{self.location(name, version)}: no such model version")
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(name, version, filename))["Body"]
            data: bytes = body.read()
            return data
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise ModelRegistryError(
                    f"{self.location(name, version, filename)}: missing file in model artifact"
                ) from None
            raise ModelRegistryError(
                f"{self.location(name, version, filename)}: cannot read ({_why(exc)})"
            ) from None
        except BotoCoreError as exc:
            raise ModelRegistryError(
                f"{self.location(name, version, filename)}: cannot read ({_why(exc)})"
            ) from None

    def versions(self, name: str) -> list[str]:
        """Versions whose completion marker exists."""
        out: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(name) + "/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    parts = obj["Key"].rsplit("/", 2)
                    if len(parts) == 3 and parts[2] == COMPLETE:
                        out.append(parts[1])
        except (ClientError, BotoCoreError) as exc:
            raise ModelRegistryError(f"{self.location(name)}: cannot list ({_why(exc)})") from None
        return out

    def get_pointer(self, name: str, pointer: str) -> str | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(name, "_pointers", pointer))["Body"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise ModelRegistryError(
                f"{self.location(name)}: cannot read pointer {pointer} ({_why(exc)})"
            ) from None
        except BotoCoreError as exc:
            raise ModelRegistryError(
                f"{self.location(name)}: cannot read pointer {pointer} ({_why(exc)})"
            ) from None
        text: str = body.read().decode().strip()
        return text or None

    def set_pointer(self, name: str, pointer: str, version: str) -> None:
        if not self._complete(name, version):
            raise ModelRegistryError(f"{self.location(name, version)}: no such model version")
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=self._key(name, "_pointers", pointer), Body=version.encode()
            )
        except (ClientError, BotoCoreError) as exc:
            raise ModelRegistryError(
                f"{self.location(name)}: cannot set pointer {pointer} ({_why(exc)})"
            ) from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"{_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}".strip(": ")
    return str(exc).splitlines()[0]
