"""Versioned model artifacts: save a trained ensemble, load it back as a ready `Scorer`.

Layout (embedded mode, under ``TS_HOME/models``)::

    <name>/<version>/metadata.json   what it is, what it was trained on, sha256 of every other file
    <name>/<version>/ensemble.json   feature names, members, weights, calibrator (+ logistic coefs)
    <name>/<version>/<member>.txt    LightGBM text model    (one per LightGBM member)
    <name>/<version>/<member>.json   XGBoost JSON model     (one per XGBoost member)
    <name>/latest                    the version id the engine loads by default

Why these choices:

* **No pickle.** Every file is text a person can read, and loads across library versions (LightGBM
  and XGBoost keep their own formats loadable; a pickled sklearn object does not survive upgrades).
* **Never a half-written artifact.** A version is written under a temporary name and renamed into
  place in one step; ``latest`` is rewritten by write-temp-then-rename. A crash at any point leaves
  ``latest`` on the old, complete version. A checksum per file catches later damage.
* **Time-sortable version ids** (``20250102T030405.123456Z-1a2b3c``) so a listing reads as a history.
* **`ArtifactStore`** is the seam for the server mode's object store: the registry only publishes a
  set of files all-or-nothing, reads one, lists versions and moves a pointer. An S3 store publishes
  ``metadata.json`` last (readers treat a version without it as absent) and writes the pointer as one
  object (S3 object writes are atomic).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from tradesignals import __version__
from tradesignals.models.inference import (
    LogisticMember,
    Member,
    Scorer,
    TreeMember,
    calibrator_from_dict,
)

__all__ = [
    "ArtifactStore",
    "FileArtifactStore",
    "LoadedModel",
    "ModelMetadata",
    "ModelRegistry",
    "ModelRegistryError",
    "new_version_id",
]

FORMAT = 1
METADATA = "metadata.json"
ENSEMBLE = "ensemble.json"
LATEST = "latest"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VERSION_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
_LIBRARIES = ("lightgbm", "xgboost-cpu", "xgboost", "scikit-learn", "numpy", "numba")


class ModelRegistryError(Exception):
    """A model that cannot be saved or loaded; the message is one line naming the path."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def new_version_id(now: datetime | None = None) -> str:
    """UTC timestamp to the microsecond plus a random suffix: sorts by time, never collides."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{t:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------------------------------
# Stores.
# --------------------------------------------------------------------------------------------------


class ArtifactStore(Protocol):
    """Where artifacts live. Implementations must make `publish` all-or-nothing and `set_pointer`
    atomic; everything else is plain reads."""

    def publish(self, name: str, version: str, files: Mapping[str, bytes]) -> None:
        """Make ``files`` visible as ``name/version`` at once, or not at all."""
        ...

    def read(self, name: str, version: str, filename: str) -> bytes:
        """A file's bytes; `ModelRegistryError` naming its location when absent."""
        ...

    def versions(self, name: str) -> list[str]:
        """Complete versions of ``name`` (unsorted is fine)."""
        ...

    def get_pointer(self, name: str, pointer: str) -> str | None: ...

    def set_pointer(self, name: str, pointer: str, version: str) -> None: ...

    def location(self, name: str, version: str | None = None, filename: str | None = None) -> str:
        """Human-readable location for error messages (a path or a URL)."""
        ...


class FileArtifactStore:
    """Artifacts in a local directory (``TS_HOME/models``): rename-based atomicity."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def location(self, name: str, version: str | None = None, filename: str | None = None) -> str:
        path = self.root / name
        if version is not None:
            path = path / version
        if filename is not None:
            path = path / filename
        return str(path)

    def publish(self, name: str, version: str, files: Mapping[str, bytes]) -> None:
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        final = parent / version
        if final.exists():
            raise ModelRegistryError(f"{final}: version already exists")
        tmp = parent / f".tmp-{version}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            for filename, data in files.items():
                _write_file(tmp / filename, data)
            _fsync_dir(tmp)
            os.rename(tmp, final)  # the version appears complete, or not at all
            _fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def read(self, name: str, version: str, filename: str) -> bytes:
        path = self.root / name / version / filename
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not path.parent.is_dir():
                raise ModelRegistryError(f"{path.parent}: no such model version") from None
            raise ModelRegistryError(f"{path}: missing file in model artifact") from None
        except OSError as err:
            raise ModelRegistryError(f"{path}: cannot read ({err.strerror})") from None

    def versions(self, name: str) -> list[str]:
        parent = self.root / name
        if not parent.is_dir():
            return []
        # Temporary dirs start with "."; a crash can leave one behind, never a half version.
        return [p.name for p in parent.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]

    def get_pointer(self, name: str, pointer: str) -> str | None:
        path = self.root / name / pointer
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def set_pointer(self, name: str, pointer: str, version: str) -> None:
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{pointer}.tmp-{secrets.token_hex(4)}"
        try:
            _write_file(tmp, (version + "\n").encode())
            os.replace(tmp, parent / pointer)
            _fsync_dir(parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Metadata.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMetadata:
    """What a version is and where it came from (``metadata.json``)."""

    name: str
    version: str
    created_at: str  # ISO 8601, UTC
    signal_type: str
    feature_set: dict[str, Any]  # opaque to the registry: {name, version, fingerprint} from features/
    training_range: tuple[str, str]  # first and last bar timestamp trained on, ISO 8601
    symbols: tuple[str, ...]
    metrics: dict[str, Any]
    code: dict[str, Any]  # {"tradesignals": __version__, "git_commit": str | None, "git_dirty": bool | None}
    libraries: dict[str, str]
    members: tuple[str, ...]
    files: dict[str, str]  # filename -> sha256 of every other file in the version
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "signal_type": self.signal_type,
            "feature_set": self.feature_set,
            "training_range": {"first": self.training_range[0], "last": self.training_range[1]},
            "symbols": list(self.symbols),
            "metrics": self.metrics,
            "code": self.code,
            "libraries": self.libraries,
            "members": list(self.members),
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMetadata:
        tr = d["training_range"]
        return cls(
            name=str(d["name"]),
            version=str(d["version"]),
            created_at=str(d["created_at"]),
            signal_type=str(d["signal_type"]),
            feature_set=dict(d["feature_set"]),
            training_range=(str(tr["first"]), str(tr["last"])),
            symbols=tuple(str(s) for s in d["symbols"]),
            metrics=dict(d["metrics"]),
            code=dict(d["code"]),
            libraries={str(k): str(v) for k, v in d["libraries"].items()},
            members=tuple(str(m) for m in d["members"]),
            files={str(k): str(v) for k, v in d["files"].items()},
            format=int(d.get("format", FORMAT)),
        )


@dataclass(frozen=True)
class LoadedModel:
    """A loaded version: the scorer the engine calls, and the metadata it stamps on each signal."""

    scorer: Scorer
    metadata: ModelMetadata

    @property
    def version(self) -> str:
        return self.metadata.version


# --------------------------------------------------------------------------------------------------
# Registry.
# --------------------------------------------------------------------------------------------------


class ModelRegistry:
    """Save, list and load versions of named models in an `ArtifactStore`."""

    def __init__(self, store: ArtifactStore | Path | str) -> None:
        self.store: ArtifactStore = FileArtifactStore(store) if isinstance(store, Path | str) else store

    @classmethod
    def at_home(cls, home: Path | str) -> ModelRegistry:
        """The embedded-mode registry under ``TS_HOME`` (``Settings.home``)."""
        return cls(FileArtifactStore(Path(home) / "models"))

    def save(
        self,
        name: str,
        scorer: Scorer,
        *,
        feature_set: Mapping[str, Any],
        training_range: tuple[datetime | str, datetime | str],
        symbols: Sequence[str],
        signal_type: str,
        metrics: Mapping[str, Any],
        make_latest: bool = True,
    ) -> ModelMetadata:
        """Write a new version (all-or-nothing) and, unless told not to, point ``latest`` at it.

        Non-finite metric values (an undefined AUC, say) are stored as null: JSON has no NaN.
        """
        _check_name(name, self.store.location(name))
        version = new_version_id()
        files = _serialise(scorer)
        meta = ModelMetadata(
            name=name,
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            signal_type=str(signal_type),
            feature_set=_plain(dict(feature_set)),
            training_range=(_iso(training_range[0]), _iso(training_range[1])),
            symbols=tuple(str(s) for s in symbols),
            metrics=_plain(dict(metrics)),
            code=_code_version(),
            libraries=_library_versions(),
            members=scorer.member_names,
            files={fn: hashlib.sha256(data).hexdigest() for fn, data in files.items()},
        )
        files[METADATA] = _dumps(meta.to_dict())
        self.store.publish(name, version, files)
        if make_latest:
            self.store.set_pointer(name, LATEST, version)
        return meta

    def set_latest(self, name: str, version: str) -> None:
        """Point ``latest`` at an existing version (a rollback is just this)."""
        self._metadata(name, version)  # refuse to point at something that does not load
        self.store.set_pointer(name, LATEST, version)

    def latest_version(self, name: str) -> str | None:
        return self.store.get_pointer(name, LATEST)

    def list_versions(self, name: str) -> list[str]:
        """Complete versions of ``name``, oldest first."""
        return sorted(self.store.versions(name))

    def metadata(self, name: str, version: str = "latest") -> ModelMetadata:
        return self._metadata(name, self._resolve(name, version))

    def load(self, name: str, version: str = "latest", *, warm: bool = True) -> LoadedModel:
        """Load a version (``latest`` by default) as a ready, warmed `Scorer` plus its metadata.

        Every file is checked against the checksum recorded at save time before it is parsed.
        """
        version = self._resolve(name, version)
        meta = self._metadata(name, version)
        blobs: dict[str, bytes] = {}
        for filename, digest in meta.files.items():
            data = self.store.read(name, version, filename)
            if hashlib.sha256(data).hexdigest() != digest:
                raise ModelRegistryError(
                    f"{self.store.location(name, version, filename)}: corrupt artifact (checksum mismatch)"
                )
            blobs[filename] = data
        if ENSEMBLE not in blobs:
            raise ModelRegistryError(f"{self.store.location(name, version, ENSEMBLE)}: missing from metadata")
        try:
            scorer = _deserialise(blobs, warm=warm)
        except ModelRegistryError:
            raise
        except Exception as err:  # a library parse error, a bad field: name the artifact, one line
            raise ModelRegistryError(
                f"{self.store.location(name, version)}: cannot build the scorer ({type(err).__name__}: {err})"
            ) from err
        return LoadedModel(scorer, meta)

    def _resolve(self, name: str, version: str) -> str:
        _check_name(name, self.store.location(name))
        if version != LATEST:
            if not _VERSION_RE.match(version):
                raise ModelRegistryError(f"{self.store.location(name, version)}: not a version id")
            return version
        pointed = self.store.get_pointer(name, LATEST)
        if pointed is None:
            raise ModelRegistryError(
                f"{self.store.location(name, None, LATEST)}: no latest version of {name!r}"
            )
        if not _VERSION_RE.match(pointed):
            raise ModelRegistryError(
                f"{self.store.location(name, None, LATEST)}: corrupt pointer {pointed!r}"
            )
        return pointed

    def _metadata(self, name: str, version: str) -> ModelMetadata:
        raw = self.store.read(name, version, METADATA)
        where = self.store.location(name, version, METADATA)
        try:
            meta = ModelMetadata.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ModelRegistryError(f"{where}: corrupt metadata ({type(err).__name__}: {err})") from None
        if meta.format > FORMAT:
            raise ModelRegistryError(
                f"{where}: format {meta.format} is newer than this code reads ({FORMAT})"
            )
        if meta.version != version or meta.name != name:
            raise ModelRegistryError(f"{where}: says it is {meta.name}/{meta.version}")
        return meta


# --------------------------------------------------------------------------------------------------
# (De)serialisation of a Scorer.
# --------------------------------------------------------------------------------------------------


def _serialise(scorer: Scorer) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    members: list[dict[str, Any]] = []
    for m in scorer.members:
        _check_name(m.name, f"member {m.name!r}")
        if isinstance(m, TreeMember):
            if m.kind == "lightgbm":
                filename = f"{m.name}.txt"
                files[filename] = m.booster.model_to_string().encode()  # type: ignore[union-attr]
            else:
                filename = f"{m.name}.json"
                files[filename] = bytes(m.booster.save_raw(raw_format="json"))  # type: ignore[union-attr]
            members.append({"kind": m.kind, "name": m.name, "file": filename})
        else:
            members.append(m.to_dict())
    ensemble = {
        "format": FORMAT,
        "feature_names": list(scorer.feature_names),
        "required_features": list(scorer.required_features),
        "members": members,
        "weights": list(scorer.weights),
        "calibrator": None if scorer.calibrator is None else scorer.calibrator.to_dict(),
    }
    if ENSEMBLE in files or METADATA in files:
        raise ModelRegistryError(f"member names clash with {ENSEMBLE} or {METADATA}")
    files[ENSEMBLE] = _dumps(ensemble)
    return files


def preload_libraries() -> None:
    """Import the boosting libraries that loading an artifact needs (seconds on a small machine).

    For a caller that is waiting anyway — the demo, while its first model trains in another
    process — so the load that follows pays only for reading the model.
    """
    import lightgbm  # noqa: F401
    import xgboost  # noqa: F401


def _deserialise(blobs: Mapping[str, bytes], *, warm: bool) -> Scorer:
    ens = json.loads(blobs[ENSEMBLE])
    members: list[Member] = []
    for spec in ens["members"]:
        kind = spec["kind"]
        if kind == "lightgbm":
            import lightgbm

            booster = lightgbm.Booster(model_str=blobs[spec["file"]].decode())
            members.append(TreeMember.from_lightgbm(booster, spec["name"]))
        elif kind == "xgboost":
            import xgboost

            xbooster = xgboost.Booster()
            xbooster.load_model(bytearray(blobs[spec["file"]]))
            members.append(TreeMember.from_xgboost(xbooster, spec["name"]))
        elif kind == "logistic":
            members.append(LogisticMember.from_dict(spec))
        else:
            raise ValueError(f"unknown member kind {kind!r}")
    return Scorer(
        members,
        feature_names=ens["feature_names"],
        weights=ens["weights"],
        calibrator=calibrator_from_dict(ens["calibrator"]),
        required_features=ens["required_features"],
        warm=warm,
    )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, datetime):
        return _iso(obj)
    return obj


def _iso(ts: datetime | str) -> str:
    return ts.isoformat() if isinstance(ts, datetime) else str(ts)


def _check_name(name: str, where: str) -> None:
    if not _NAME_RE.match(name):
        raise ModelRegistryError(f"{where}: invalid name {name!r} (letters, digits, '_', '.', '-')")


def _code_version() -> dict[str, Any]:
    """tradesignals version and, when running from a git checkout, its commit and dirtiness."""
    here = Path(__file__).resolve().parent
    commit: str | None = None
    dirty: bool | None = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        if out.returncode == 0:
            commit = out.stdout.strip() or None
            st = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"tradesignals": __version__, "git_commit": commit, "git_dirty": dirty}


def _library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for dist in _LIBRARIES:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[dist] = importlib_metadata.version(dist)
    return versions
