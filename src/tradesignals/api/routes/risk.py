"""The risk questionnaire and its assessment; pure computation, no account needed.

The questionnaire is served without scores, weights or caps: scoring is the server's business, so it
can be recalibrated (with a new ``version``) without touching clients, and a form that showed the
points would invite people to answer for the profile they want rather than the truth.

Bad answers are a 422 in FastAPI's own validation-error shape, one item per offending question with
``loc`` ending in the question id, so clients parse every 422 the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, StringConstraints

from tradesignals.domain.risk import (
    QUESTIONNAIRE,
    QUESTIONNAIRE_VERSION,
    InvalidAnswers,
    ProfileName,
    RiskProfile,
    assess,
)
from tradesignals.domain.signals import SignalType

router = APIRouter(prefix="/api/risk", tags=["risk"])


class OptionOut(BaseModel):
    id: str
    text: str


class QuestionOut(BaseModel):
    id: str
    text: str
    options: list[OptionOut]


class QuestionnaireOut(BaseModel):
    version: int = Field(description="Changes whenever questions or scoring change.")
    questions: list[QuestionOut]


Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AssessIn(BaseModel):
    answers: Annotated[dict[Key, Key], Field(max_length=32)] = Field(
        description="Question id → chosen option id, one for every question.",
        examples=[{"horizon": "3_10y", "loss_tolerance": "20pct"}],
    )


class ProfileOut(BaseModel):
    """A profile's limits. Percentages are of equity; volatility is annualised (0.3 = 30 %); the
    edge is confidence minus the model's base rate (0.5 for a signal without one), 0.04 = 4 points."""

    name: ProfileName
    max_position_pct: float
    risk_per_trade_pct: float
    min_edge: float = Field(description="Least edge over the model's base rate a signal needs.")
    min_rank: float = Field(
        description="Least rank of the signal's confidence among the model's own out-of-fold confidences."
    )
    max_volatility: float
    allowed_types: list[SignalType]
    sector_caps_pct: dict[str, float] = Field(description="Caps for named sectors (lower case).")
    default_sector_cap_pct: float = Field(description="Cap for any other sector, and for none.")

    @classmethod
    def of(cls, p: RiskProfile) -> ProfileOut:
        return cls(
            name=p.name,
            max_position_pct=p.max_position_pct,
            risk_per_trade_pct=p.risk_per_trade_pct,
            min_edge=p.min_edge,
            min_rank=p.min_rank,
            max_volatility=p.max_volatility,
            allowed_types=[t for t in SignalType if t in p.allowed_types],
            sector_caps_pct=dict(p.sector_caps_pct),
            default_sector_cap_pct=p.default_sector_cap_pct,
        )


class AssessOut(BaseModel):
    risk_tolerance: float = Field(ge=0, le=1, description="The user's score, 0 most cautious.")
    profile: ProfileOut
    capped_by: list[str] = Field(description="Questions whose answer lowered the profile below the score's.")
    questionnaire_version: int


class AnswerProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class AnswersError(BaseModel):
    detail: list[AnswerProblem]


_QUESTIONNAIRE_OUT = QuestionnaireOut(
    version=QUESTIONNAIRE_VERSION,
    questions=[
        QuestionOut(id=q.id, text=q.text, options=[OptionOut(id=o.id, text=o.text) for o in q.options])
        for q in QUESTIONNAIRE
    ],
)


@router.get("/questionnaire", response_model=QuestionnaireOut)
async def questionnaire() -> QuestionnaireOut:
    return _QUESTIONNAIRE_OUT


@router.post("/assess", response_model=AssessOut, responses={422: {"model": AnswersError}})
async def assess_answers(body: AssessIn) -> AssessOut:
    try:
        result = assess(body.answers)
    except InvalidAnswers as err:
        detail = [
            AnswerProblem(loc=["body", "answers", qid], msg=why, type="invalid_answer").model_dump()
            for qid, why in err.problems.items()
        ]
        raise HTTPException(status_code=422, detail=detail) from None
    return AssessOut(
        risk_tolerance=result.risk_tolerance,
        profile=ProfileOut.of(result.profile),
        capped_by=list(result.capped_by),
        questionnaire_version=result.questionnaire_version,
    )
