"""Structured answers: Pydantic validation, and the citation rule on claims."""

from __future__ import annotations

from collections import Counter

import pytest

from tradesignals.domain.research import EXPLANATION, RESEARCH, Claim, check_claims
from tradesignals.llm.answers import AnswerError, ExplanationAnswer, ResearchAnswer, parse_answer


def test_valid_answers_parse_and_a_code_fence_is_tolerated() -> None:
    e = parse_answer(EXPLANATION, '```json\n{"text": "Long ACME [t:1]", "citations": ["t:1"]}\n```')
    assert isinstance(e, ExplanationAnswer) and e.citations == ["t:1"]
    r = parse_answer(RESEARCH, '{"claims": [{"text": "A", "citations": ["t:1", "t:1"]}]}')
    assert isinstance(r, ResearchAnswer) and r.to_claims() == [Claim("A", ("t:1",))]


@pytest.mark.parametrize(
    ("kind", "raw", "where"),
    [
        (EXPLANATION, "BUY NOW", "answer"),
        (EXPLANATION, '{"text": ""}', "text"),
        (EXPLANATION, '{"text": "x", "citations": "t:1"}', "citations"),
        (EXPLANATION, '{"text": "x", "advice": "BUY"}', "advice"),
        (RESEARCH, '{"claims": [{"text": "x", "citations": [1]}]}', "claims.0.citations.0"),
        (RESEARCH, '{"summary": "x"}', "claims"),
        (RESEARCH, '{"claims": [' + ",".join(['{"text": "x", "citations": []}'] * 13) + "]}", "claims"),
    ],
)
def test_invalid_answers_are_one_line_errors(kind: str, raw: str, where: str) -> None:
    with pytest.raises(AnswerError) as err:
        parse_answer(kind, raw)
    assert where in str(err.value) and "\n" not in str(err.value)


def test_claims_cite_only_stored_items_of_the_symbol() -> None:
    stored = {"t:1": ("ACME",), "t:2": ("XYZ",)}
    claims = [
        Claim("good", ("t:1",)),
        Claim("uncited", ()),
        Claim("invented", ("t:1", "reuters:404")),
        Claim("about another symbol", ("t:2",)),
    ]
    kept, dropped = check_claims(claims, stored, "ACME")
    assert kept == [Claim("good", ("t:1",))]
    assert dropped == Counter({"uncited": 1, "unknown_source": 1, "other_symbol": 1})
