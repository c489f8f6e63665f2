"""Named, versioned feature sets: what a model was trained on, so the scorer can refuse anything else.

A model is a function of a column order. Feed it ``rsi_14`` where it learnt ``ema_20``, or an RSI of
period 10 where it learnt 14, and it still returns a probability — a confident, meaningless one,
which is what users would pay for. So every feature vector travels with a ``FeatureSetRef`` (name,
version, fingerprint), a model records the ref it was trained on, and the scorer calls
``check_compatible`` before scoring a row.

The fingerprint is a SHA-256 of the canonical JSON (sorted keys, no whitespace) of name, version,
columns and params. Two sets with the same name and version but different contents get different
fingerprints, so an edited-in-place definition is caught even when someone forgot to bump the
version. Params count by their JSON spelling: ``2`` and ``2.0`` are different params — write each
value the way the indicator code reads it.

Released sets are never edited. To add or change a column or a param, add a new version at the end
of ``# ---- feature sets`` below (and point ``latest`` at it by registering it); models trained on
the old version keep scoring with the old definition, or are refused — never silently remapped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tradesignals.features.news import NEWS_PARAMS
from tradesignals.features.news import feature_names as news_feature_names

#: Column names the stores and joins use around the feature columns; a feature may not take one.
RESERVED_COLUMNS = frozenset(
    {"ts", "timestamp", "symbol", "available_at", "feature_ts", "feature_available_at"}
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Shown in messages and used in directory names: long enough to never collide among our few sets.
FINGERPRINT_CHARS = 16


class FeatureSetMismatch(Exception):
    """A model, a stored row or a store expected one feature set and got another (one-line message)."""


class UnknownFeatureSet(KeyError):
    """No feature set is registered under that name (and version)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown feature set"


@dataclass(frozen=True, slots=True)
class FeatureSetRef:
    """What a model records about its training features and what every stored vector carries."""

    name: str
    version: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for model metadata; ``from_dict`` reads it back."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSetRef:
        try:
            name, version, fingerprint = data["name"], data["version"], data["fingerprint"]
        except KeyError as exc:
            raise ValueError(f"feature set ref lacks {exc.args[0]!r}: {dict(data)!r}") from None
        if not isinstance(name, str) or not isinstance(fingerprint, str):
            raise ValueError(f"feature set ref has a non-text name or fingerprint: {dict(data)!r}")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"feature set ref version must be an integer: {dict(data)!r}")
        return cls(name, version, fingerprint)

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.fingerprint[:FINGERPRINT_CHARS]})"


@dataclass(frozen=True, eq=False, slots=True)
class FeatureSet:
    """An ordered list of feature columns plus the parameters that produced them.

    ``columns`` is the order of the per-bar vector (``vector[i]`` is ``columns[i]``). ``params`` is
    any JSON-able mapping (indicator periods, smoothing…) and is frozen on construction, so the
    fingerprint computed here stays the truth about the object. Equality and hashing go by
    fingerprint: two sets are the same exactly when a model could not tell them apart.
    """

    name: str
    version: int
    columns: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"feature set name {self.name!r} must be lower-case letters, digits and '_', "
                "starting with a letter"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(
                f"feature set {self.name}: version must be an integer >= 1, got {self.version!r}"
            )
        columns = tuple(self.columns)
        if not columns:
            raise ValueError(f"feature set {self.name} v{self.version} has no columns")
        for col in columns:
            if not isinstance(col, str) or not _NAME.match(col):
                raise ValueError(
                    f"feature set {self.name} v{self.version}: column {col!r} must be lower-case "
                    "letters, digits and '_', starting with a letter"
                )
            if col in RESERVED_COLUMNS:
                raise ValueError(f"feature set {self.name} v{self.version}: column {col!r} is reserved")
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(f"feature set {self.name} v{self.version}: duplicate columns {dupes}")
        if not isinstance(self.params, Mapping):
            raise ValueError(f"feature set {self.name} v{self.version}: params must be a mapping")
        plain = _plain(self.params, f"{self.name} v{self.version} params")
        canonical = _canonical(
            {"name": self.name, "version": self.version, "columns": columns, "params": plain}
        )
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "params", _freeze(plain))
        object.__setattr__(self, "fingerprint", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def ref(self) -> FeatureSetRef:
        return FeatureSetRef(self.name, self.version, self.fingerprint)

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:FINGERPRINT_CHARS]

    def index(self, column: str) -> int:
        """Position of ``column`` in the vector; ``KeyError`` naming the set when absent."""
        try:
            return self.columns.index(column)
        except ValueError:
            raise KeyError(f"{column!r} is not a column of feature set {self.name} v{self.version}") from None

    def indices_in(self, names: Sequence[str]) -> list[int]:
        """Where this set's columns sit in a wider vector whose columns are ``names``, in set order.

        The streaming engine computes every feature it knows (``incremental.FEATURE_NAMES``); a set
        is a selection from that, so ``vector[fs.indices_in(FEATURE_NAMES)]`` is the set's vector.
        Raises ``KeyError`` naming the set's columns that ``names`` lacks.
        """
        where = {name: i for i, name in enumerate(names)}
        missing = [c for c in self.columns if c not in where]
        if missing:
            raise KeyError(
                f"feature set {self.name} v{self.version} needs columns the source lacks: {', '.join(missing)}"
            )
        return [where[c] for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        """Full definition as plain JSON (stored beside offline data so a directory explains itself)."""
        return {
            "name": self.name,
            "version": self.version,
            "columns": list(self.columns),
            "params": _thaw(self.params),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSet:
        """Rebuild from ``to_dict``; refuses a document whose recorded fingerprint does not match."""
        fs = cls(data["name"], data["version"], tuple(data["columns"]), data.get("params", {}))
        recorded = data.get("fingerprint")
        if recorded is not None and recorded != fs.fingerprint:
            raise FeatureSetMismatch(
                f"feature set {fs.name} v{fs.version}: recorded fingerprint {str(recorded)[:FINGERPRINT_CHARS]} "
                f"does not match its definition ({fs.short_fingerprint})"
            )
        return fs

    def __len__(self) -> int:
        return len(self.columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureSet):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"FeatureSet({self.name!r}, v{self.version}, {len(self.columns)} columns, {self.short_fingerprint})"


def check_compatible(trained: FeatureSetRef | FeatureSet, live: FeatureSet) -> None:
    """Raise ``FeatureSetMismatch`` unless ``live`` is exactly the set the model was trained on.

    A model stores only the ref, so when the fingerprints differ the message names the first
    differing column or param if the trained definition is still in the catalog (it should be:
    released sets are never removed), else just both versions and fingerprints.
    """
    ref = trained.ref if isinstance(trained, FeatureSet) else trained
    if ref.fingerprint == live.fingerprint:
        return
    head = f"feature set mismatch: model trained on {ref}, live features are {live.ref}"
    old = trained if isinstance(trained, FeatureSet) else CATALOG.find(ref)
    detail = first_difference(old, live) if old is not None else None
    if detail is None:
        detail = (
            "the trained definition is not in the catalog"
            if old is None
            else "definitions differ only in name or version"
        )
    raise FeatureSetMismatch(f"{head}: {detail}")


def first_difference(a: FeatureSet, b: FeatureSet) -> str | None:
    """The first column or param that differs between ``a`` and ``b``, as a short phrase; None if none."""
    for i in range(max(len(a.columns), len(b.columns))):
        left = a.columns[i] if i < len(a.columns) else None
        right = b.columns[i] if i < len(b.columns) else None
        if left != right:
            return f"column {i} is {_show(left)} vs {_show(right)}"
    pa, pb = _flatten(_thaw(a.params)), _flatten(_thaw(b.params))
    for key in sorted(pa.keys() | pb.keys()):
        if key not in pa or key not in pb or _canonical(pa[key]) != _canonical(pb[key]):
            return f"param {key} is {_show_param(pa, key)} vs {_show_param(pb, key)}"
    return None


class FeatureCatalog:
    """The registry of known feature sets, by (name, version) and by fingerprint."""

    def __init__(self, sets: Iterable[FeatureSet] = ()) -> None:
        self._sets: dict[tuple[str, int], FeatureSet] = {}
        self._by_fingerprint: dict[str, FeatureSet] = {}
        for fs in sets:
            self.register(fs)

    def register(self, fs: FeatureSet) -> FeatureSet:
        """Add ``fs``; registering the same definition again is a no-op, a different one is refused."""
        key = (fs.name, fs.version)
        known = self._sets.get(key)
        if known is not None:
            if known == fs:
                return known
            raise ValueError(
                f"feature set {fs.name} v{fs.version} is already registered with a different definition "
                f"({first_difference(known, fs)}); released sets are immutable — add v{self._next(fs.name)}"
            )
        self._sets[key] = fs
        self._by_fingerprint[fs.fingerprint] = fs
        return fs

    def get(self, name: str, version: int | None = None) -> FeatureSet:
        """The set ``name`` at ``version``, or its latest version when ``version`` is None."""
        if version is None:
            return self.latest(name)
        try:
            return self._sets[(name, version)]
        except KeyError:
            have = self.versions(name)
            known = f"known versions: {', '.join(f'v{v}' for v in have)}" if have else self._known_names()
            raise UnknownFeatureSet(f"no feature set {name} v{version}; {known}") from None

    def latest(self, name: str) -> FeatureSet:
        have = self.versions(name)
        if not have:
            raise UnknownFeatureSet(f"no feature set named {name!r}; {self._known_names()}")
        return self._sets[(name, have[-1])]

    def find(self, ref: FeatureSetRef) -> FeatureSet | None:
        """The registered set with exactly this fingerprint (what a stored ref resolves to)."""
        return self._by_fingerprint.get(ref.fingerprint)

    def resolve(self, ref: FeatureSetRef) -> FeatureSet:
        """Like ``find`` but raising: for loading a model, whose features must be known to compute them."""
        fs = self.find(ref)
        if fs is None:
            try:
                registered = self.get(ref.name, ref.version)
            except UnknownFeatureSet:
                raise UnknownFeatureSet(
                    f"model needs feature set {ref}, which is not in the catalog"
                ) from None
            raise FeatureSetMismatch(
                f"model needs feature set {ref}, but the catalog's {ref.name} v{ref.version} is "
                f"{registered.short_fingerprint}: the definition was edited after release"
            )
        return fs

    def versions(self, name: str) -> list[int]:
        return sorted(v for n, v in self._sets if n == name)

    def names(self) -> list[str]:
        return sorted({n for n, _ in self._sets})

    def __iter__(self) -> Iterator[FeatureSet]:
        return iter(sorted(self._sets.values(), key=lambda fs: (fs.name, fs.version)))

    def _next(self, name: str) -> int:
        return (self.versions(name) or [0])[-1] + 1

    def _known_names(self) -> str:
        names = self.names()
        return f"known sets: {', '.join(names)}" if names else "the catalog is empty"


# ---- helpers ------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain(value: Any, where: str) -> Any:
    """A JSON-able deep copy (tuples become lists); refuses what JSON cannot say exactly."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not text")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return value
    if value is None or isinstance(value, str | int | bool):
        return value
    raise ValueError(
        f"{where}: {type(value).__name__} {value!r} is not JSON (use str, int, float, bool, list, dict)"
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaves (lists are leaves), so a difference can be named precisely."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def _show(column: str | None) -> str:
    return "(none)" if column is None else column


def _show_param(params: Mapping[str, Any], key: str) -> str:
    return _canonical(params[key]) if key in params else "(absent)"


# ---- feature sets -------------------------------------------------------------------------------
# The one place feature sets are defined. Never edit a released set: append a new version (copy the
# latest, change it, bump ``version``) and register it below. Column order is the vector order.

#: The contract columns of the ``tradesignals features`` CLI (issue 4): 12/26/9 MACD, 20/2 Bollinger.
CORE_V1 = FeatureSet(
    name="core",
    version=1,
    columns=(
        "sma_20",
        "ema_20",
        "rsi_14",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_upper",
        "bb_middle",
        "bb_lower",
        "atr_14",
        "adx_14",
        "obv",
        "ret_1",
        "ret_5",
        "ret_20",
    ),
    params={
        "sma": {"period": 20},
        "ema": {"period": 20},
        "rsi": {"period": 14, "smoothing": "wilder"},
        "macd": {"fast": 12, "slow": 26, "signal": 9},
        "bbands": {"period": 20, "nbdev": 2.0},
        "atr": {"period": 14},
        "adx": {"period": 14},
        "returns": {"horizons": [1, 5, 20], "kind": "simple"},
    },
)

# v2: everything the indicator engine computes (FEATURE_NAMES, in that order) — the contract
# fifteen first, then bands, oscillators, volume, session and candlestick context.
CORE_V2 = FeatureSet(
    name="core",
    version=2,
    columns=(
        *CORE_V1.columns,
        "bb_pctb",
        "bb_bandwidth",
        "stoch_k",
        "stoch_d",
        "rvol_20",
        "volume_z_20",
        "vwap",
        "vwap_dist",
        "vp_poc",
        "vp_vah",
        "vp_val",
        "gap_pct",
        "cdl_engulfing",
        "cdl_doji",
        "cdl_hammer",
        "prev_close_dist",
        "prev_high_dist",
        "prev_low_dist",
    ),
    params={
        **CORE_V1.params,
        "stoch": {"fastk": 14, "slowk": 3, "slowd": 3},
        "rvol": {"period": 20, "returns": "log", "annualised": False},
        "volume_z": {"period": 20},
        "vwap": {"reset": "session"},
        "volume_profile": {"window": 20, "bins": 10, "value_area": 0.7, "price": "typical"},
        "patterns": {"source": "talib"},
    },
)

# core + news: the bar features of v2, then the rolling news features of ``features/news.py``
# (point-in-time on received_at). A model on this set needs news at every row it scores: the
# dataset builder takes the items, and the live engine refuses it (its scorer computes bars only).
CORE_NEWS_V1 = FeatureSet(
    name="core_news",
    version=1,
    columns=(*CORE_V2.columns, *news_feature_names()),
    params={**CORE_V2.params, "news": NEWS_PARAMS},
)

CATALOG = FeatureCatalog([CORE_V1, CORE_V2, CORE_NEWS_V1])
DEFAULT_FEATURE_SET = "core"


def get_feature_set(name: str = DEFAULT_FEATURE_SET, version: int | None = None) -> FeatureSet:
    """The registered set ``name`` at ``version`` (latest when None) from the default catalog."""
    return CATALOG.get(name, version)


def latest(name: str = DEFAULT_FEATURE_SET) -> FeatureSet:
    """The highest registered version of ``name`` in the default catalog."""
    return CATALOG.latest(name)
