"""Catalyst rules: one headline per class (wording not taken from the labelled samples), the
guidance/earnings boundary, and the labelled fixtures (hygiene and a regression floor)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tradesignals.domain.catalysts import CATALYSTS, Catalyst, classify, parse_labels
from tradesignals.news.catalysts import read_labelled, score

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalysts"
C = Catalyst


@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        ("Nvidia Q3 Revenue $18.1B Beats $16.2B Estimate", {C.EARNINGS}),
        ("Oracle Shares Fall After Quarterly Results", {C.EARNINGS}),
        ("Cisco Lowers FY24 Outlook As Orders Slow", {C.GUIDANCE}),
        ("Target Sees Q4 EPS $1.90-$2.60", {C.GUIDANCE}),
        ("Q2 EPS Tops Estimates; Company Raises Full-Year Guidance", {C.EARNINGS, C.GUIDANCE}),
        ("FDA Approves Vertex's Sickle Cell Therapy", {C.FDA_CLINICAL}),
        ("Biotech Soars On Positive Phase 3 Topline Data", {C.FDA_CLINICAL}),
        ("Broadcom Agrees To Buy VMware In $61B Deal", {C.MNA}),
        ("Activision Takeover Cleared", {C.MNA}),
        ("Barclays Downgrades Tesla to Underweight", {C.ANALYST}),
        ("Citi Maintains Buy on Apple, Raises Price Target to $230", {C.ANALYST}),
        ("Moderna Announces $500M Public Offering Of Common Stock", {C.OFFERING}),
        ("Company Files For $250M Mixed Shelf", {C.OFFERING}),
        ("DOJ Sues Google Over Ad Tech Monopoly", {C.LEGAL_REGULATORY}),
        ("Automaker Recalls 50,000 SUVs Over Airbag Fault", {C.LEGAL_REGULATORY}),
        ("Starbucks Names Brian Niccol CEO", {C.MANAGEMENT}),
        ("Intel CFO To Retire After 10 Years", {C.MANAGEMENT}),
        ("12 Stocks Moving In Tuesday's Pre-Market Session", {C.NONE}),
        ("Company Declares Quarterly Dividend Of $0.25", {C.NONE}),
        ("US Debt Downgrade Fears Weigh On Gold", {C.NONE}),
    ],
)
def test_classify(headline: str, expected: set[Catalyst]) -> None:
    assert set(classify(headline)) == expected


def test_output_is_ordered_and_none_alone() -> None:
    got = classify("Acme Q1 EPS Beats Estimates; Raises FY Guidance; CEO To Step Down")
    assert got == (C.EARNINGS, C.GUIDANCE, C.MANAGEMENT)
    assert classify("") == (C.NONE,)


def test_parse_labels() -> None:
    assert parse_labels("earnings|guidance") == {C.EARNINGS, C.GUIDANCE}
    with pytest.raises(ValueError, match="unknown catalyst 'rumour'"):
        parse_labels("rumour")


@pytest.mark.parametrize("name", ["headlines.csv", "headlines_heldout.csv"])
def test_fixture_hygiene(name: str) -> None:
    with (FIXTURES / name).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["id"].startswith("benzinga:") and r["headline"].strip() for r in rows)
    for r in rows:
        labels = parse_labels(r["labels"])
        assert labels and not (C.NONE in labels and len(labels) > 1)


def test_samples_do_not_overlap_and_reach_300() -> None:
    dev = {h for h, _ in read_labelled(FIXTURES / "headlines.csv")}
    held = read_labelled(FIXTURES / "headlines_heldout.csv")
    assert len(dev) >= 300
    assert len(held) == 150


def test_regression_floor_on_heldout() -> None:
    """Measured when the rules were frozen: exact 0.853, micro P 0.941, micro R 0.78 (bench/news.py).
    The floor is well below: it catches a broken rule table, not noise."""
    report = score(read_labelled(FIXTURES / "headlines_heldout.csv"))
    assert report["micro_precision"] >= 0.85
    assert report["micro_recall"] >= 0.65
    assert report["exact_match"] >= 0.75
    assert set(report["per_class"]) == {c.value for c in CATALYSTS}
