"""The model's structured answer, validated with Pydantic before anything of it is used.

An answer that is not one JSON object of the expected shape (a missing field, an extra one, a
wrong type, text over the bounds) is an ``AnswerError``; the sidecar then serves the template and
counts ``invalid``. A single code fence around the JSON is tolerated (models add one despite the
instructions); nothing else is repaired or guessed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tradesignals.domain.research import EXPLANATION, Claim

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
NewsId = Field(min_length=1, max_length=200)


class AnswerError(ValueError):
    """The model's answer does not validate; the message says why in one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ExplanationAnswer(_Strict):
    text: str = Field(min_length=1, max_length=1200)
    citations: list[str] = Field(default_factory=list, max_length=10)


class ClaimAnswer(_Strict):
    text: str = Field(min_length=1, max_length=600)
    citations: list[str] = Field(default_factory=list, max_length=10)


class ResearchAnswer(_Strict):
    claims: list[ClaimAnswer] = Field(max_length=12)

    def to_claims(self) -> list[Claim]:
        return [Claim(c.text, tuple(dict.fromkeys(c.citations))) for c in self.claims]


def parse_answer(kind: str, raw: str) -> ExplanationAnswer | ResearchAnswer:
    """Validate ``raw`` as the answer shape of ``kind``; ``AnswerError`` when it is not."""
    m = _FENCE.match(raw)
    body = m.group(1) if m else raw
    model: type[ExplanationAnswer] | type[ResearchAnswer] = (
        ExplanationAnswer if kind == EXPLANATION else ResearchAnswer
    )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
        raise AnswerError(f"{kind} answer: {where}: {first.get('msg', 'invalid')}"[:300]) from None
