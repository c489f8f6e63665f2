"""The catalog: fingerprints that change exactly when a model could tell, and refusals that say why."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tradesignals.features.catalog import (
    CATALOG,
    CORE_V1,
    FeatureCatalog,
    FeatureSet,
    FeatureSetMismatch,
    FeatureSetRef,
    UnknownFeatureSet,
    check_compatible,
    first_difference,
    get_feature_set,
    latest,
)

CONTRACT = (
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
)

# Pinned: core v1 is released. If this fails, core v1 was edited in place — add core v2 instead.
CORE_V1_FINGERPRINT = "7a5a21dcb741e6f48accc41735c6828b311b073ca8e46242aa7864c9a30cc9b1"


def small(version: int = 1, columns: tuple[str, ...] = ("a", "b"), **params: object) -> FeatureSet:
    return FeatureSet("small", version, columns, params or {"p": {"period": 3}})


def test_core_v1_is_the_issue_contract_and_is_pinned() -> None:
    assert get_feature_set("core", 1) is CORE_V1
    assert CORE_V1.columns == CONTRACT
    assert CORE_V1.fingerprint == CORE_V1_FINGERPRINT
    assert CORE_V1.params["macd"] == {"fast": 12, "slow": 26, "signal": 9}
    assert CORE_V1.index("rsi_14") == 2
    with pytest.raises(KeyError, match="'vwap' is not a column of feature set core v1"):
        CORE_V1.index("vwap")


def test_indices_in_selects_a_set_from_a_wider_vector() -> None:
    wide = ("vwap", *reversed(CONTRACT), "gap_pct")
    idx = CORE_V1.indices_in(wide)
    assert [wide[i] for i in idx] == list(CONTRACT)
    with pytest.raises(KeyError, match="needs columns the source lacks: sma_20, ret_20"):
        CORE_V1.indices_in(CONTRACT[1:-1])


def test_fingerprint_is_canonical_over_param_key_order() -> None:
    a = FeatureSet("x", 1, ("a",), {"m": {"fast": 12, "slow": 26}, "n": [1, 2]})
    b = FeatureSet("x", 1, ("a",), {"n": (1, 2), "m": {"slow": 26, "fast": 12}})
    assert a.fingerprint == b.fingerprint
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [
        FeatureSet("small2", 1, ("a", "b"), {"p": {"period": 3}}),
        FeatureSet("small", 2, ("a", "b"), {"p": {"period": 3}}),
        FeatureSet("small", 1, ("b", "a"), {"p": {"period": 3}}),
        FeatureSet("small", 1, ("a", "b", "c"), {"p": {"period": 3}}),
        FeatureSet("small", 1, ("a", "b"), {"p": {"period": 4}}),
        FeatureSet("small", 1, ("a", "b"), {"p": {"period": 3.0}}),  # JSON spelling counts
        FeatureSet("small", 1, ("a", "b"), {"p": {"period": 3}, "q": None}),
    ],
    ids=["name", "version", "column-order", "extra-column", "param", "int-vs-float", "extra-param"],
)
def test_fingerprint_changes_with_anything_a_model_could_notice(other: FeatureSet) -> None:
    base = small()
    assert other.fingerprint != base.fingerprint
    assert other != base


def test_params_are_frozen_and_detached_from_the_callers_dict() -> None:
    params: dict[str, Any] = {"p": {"period": 3}, "h": [1, 5]}
    fs = FeatureSet("x", 1, ("a",), params)
    before = fs.fingerprint
    params["p"]["period"] = 99
    assert fs.params["p"]["period"] == 3
    assert fs.fingerprint == before
    with pytest.raises(TypeError):
        fs.params["p"]["period"] = 5
    assert fs.params["h"] == (1, 5)
    assert fs.to_dict()["params"] == {"p": {"period": 3}, "h": [1, 5]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Core"}, "name 'Core'"),
        ({"name": "1core"}, "name '1core'"),
        ({"version": 0}, "version must be an integer >= 1"),
        ({"version": True}, "version must be an integer >= 1"),
        ({"columns": ()}, "has no columns"),
        ({"columns": ("a", "a")}, "duplicate columns ['a']"),
        ({"columns": ("a", "Bad-Name")}, "column 'Bad-Name'"),
        ({"columns": ("a", "available_at")}, "'available_at' is reserved"),
        ({"params": {"p": float("nan")}}, "is not a finite number"),
        ({"params": {"p": {1: 2}}}, "key 1 is not text"),
        ({"params": {"p": {3}}}, "set {3} is not JSON"),
    ],
)
def test_invalid_definitions_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "x", "version": 1, "columns": ("a",), "params": {}}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        FeatureSet(**args)  # type: ignore[arg-type]


def test_definition_round_trips_and_a_tampered_fingerprint_is_refused() -> None:
    doc = CORE_V1.to_dict()
    assert FeatureSet.from_dict(doc) == CORE_V1
    doc["params"]["rsi"]["period"] = 10
    with pytest.raises(FeatureSetMismatch, match="does not match its definition"):
        FeatureSet.from_dict(doc)


def test_ref_round_trips_through_model_metadata() -> None:
    ref = CORE_V1.ref
    assert FeatureSetRef.from_dict(ref.to_dict()) == ref
    assert str(ref) == f"core v1 ({CORE_V1_FINGERPRINT[:16]})"
    with pytest.raises(ValueError, match="lacks 'fingerprint'"):
        FeatureSetRef.from_dict({"name": "core", "version": 1})
    with pytest.raises(ValueError, match="version must be an integer"):
        FeatureSetRef.from_dict({"name": "core", "version": "1", "fingerprint": "ab"})


def test_check_compatible_passes_the_same_set_by_ref_or_by_definition() -> None:
    check_compatible(CORE_V1.ref, CORE_V1)
    check_compatible(CORE_V1, FeatureSet.from_dict(CORE_V1.to_dict()))


def test_mismatch_names_both_versions_and_the_first_differing_column() -> None:
    v2 = FeatureSet("core", 2, (*CORE_V1.columns, "vwap"), dict(CORE_V1.params))
    with pytest.raises(FeatureSetMismatch) as info:
        check_compatible(CORE_V1.ref, v2)  # CORE_V1 is in the catalog: the detail is found
    msg = str(info.value)
    assert "\n" not in msg
    assert "core v1" in msg and "core v2" in msg
    assert msg.endswith("column 15 is (none) vs vwap")


def test_mismatch_names_the_first_differing_param_by_its_dotted_path() -> None:
    edited = FeatureSet(
        "core", 1, CORE_V1.columns, {**CORE_V1.params, "rsi": {"period": 10, "smoothing": "wilder"}}
    )
    with pytest.raises(FeatureSetMismatch, match=r"param rsi\.period is 14 vs 10$") as info:
        check_compatible(CORE_V1.ref, edited)
    assert str(info.value).count("core v1") == 2  # same version, different fingerprints: both shown
    assert CORE_V1.short_fingerprint in str(info.value) and edited.short_fingerprint in str(info.value)


def test_mismatch_with_a_ref_unknown_to_the_catalog_still_names_both() -> None:
    ghost = FeatureSetRef("core", 7, "0" * 64)
    with pytest.raises(FeatureSetMismatch, match=r"core v7 .* core v1 .*not in the catalog"):
        check_compatible(ghost, CORE_V1)


def test_first_difference_reports_absent_params_and_none_for_equal_sets() -> None:
    a = small(p={"period": 3})
    b = small(p={"period": 3}, q={"k": 1})
    assert first_difference(a, b) == "param q.k is (absent) vs 1"
    assert first_difference(a, small(p={"period": 3})) is None


def test_catalog_register_is_idempotent_and_refuses_an_edited_release() -> None:
    cat = FeatureCatalog()
    v1 = small()
    assert cat.register(v1) is v1
    assert cat.register(small()) is v1  # same definition again: no-op
    with pytest.raises(
        ValueError, match=r"small v1 is already registered .*param p\.period is 3 vs 4.*add v2"
    ):
        cat.register(small(p={"period": 4}))


def test_catalog_lookups_latest_and_errors() -> None:
    v1, v3 = small(1), small(3, columns=("a", "b", "c"))
    cat = FeatureCatalog([v3, v1])
    assert cat.latest("small") is v3
    assert cat.get("small") is v3
    assert cat.get("small", 1) is v1
    assert cat.versions("small") == [1, 3]
    assert cat.names() == ["small"]
    assert [fs.version for fs in cat] == [1, 3]
    assert cat.find(v1.ref) is v1
    with pytest.raises(UnknownFeatureSet, match="no feature set small v2; known versions: v1, v3"):
        cat.get("small", 2)
    with pytest.raises(UnknownFeatureSet, match="no feature set named 'nope'; known sets: small"):
        cat.latest("nope")
    with pytest.raises(UnknownFeatureSet, match="the catalog is empty"):
        FeatureCatalog().get("small", 1)


def test_resolve_loads_a_models_set_or_says_it_was_edited() -> None:
    cat = FeatureCatalog([small()])
    assert cat.resolve(small().ref) == small()
    edited_ref = small(p={"period": 4}).ref
    with pytest.raises(FeatureSetMismatch, match="edited after release"):
        cat.resolve(edited_ref)
    with pytest.raises(UnknownFeatureSet, match="not in the catalog"):
        cat.resolve(small(9).ref)


def test_default_catalog_functions() -> None:
    assert latest("core") is CATALOG.latest("core")
    assert latest().name == "core"
    assert get_feature_set() is latest("core")


def test_core_v2_is_exactly_what_the_indicator_engine_computes() -> None:
    from tradesignals.features import FEATURE_NAMES
    from tradesignals.features.catalog import CORE_V1, CORE_V2, latest

    assert CORE_V2.columns == tuple(FEATURE_NAMES)
    assert CORE_V2.columns[:15] == CORE_V1.columns
    assert latest("core") == CORE_V2
    assert CORE_V2.fingerprint != CORE_V1.fingerprint
