"""Catalyst classes of a news headline, by rules (a rule, not a model, and labelled as such).

Why rules: the events that move a single stock (results, guidance, drug approvals, deals, broker
rating changes, share offerings, lawsuits, executive changes) are announced in a small, stable
vocabulary, and there is no labelled training set beyond the few hundred headlines we labelled by
hand, which are kept for *measuring* (tests/fixtures/catalysts, precision/recall in bench/news.py).
A headline may carry several catalysts ("Q4 EPS beats; raises FY view" is earnings and guidance);
none of them gives ``(Catalyst.NONE,)``.

Each class is a list of regular expressions over the lower-cased headline; a class fires when any
matches and none of its exclusions does. Patterns are written from the wording of financial
headlines in general, not tuned against the labelled sample.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Catalyst(StrEnum):
    EARNINGS = "earnings"
    GUIDANCE = "guidance"
    FDA_CLINICAL = "fda_clinical"
    MNA = "mna"
    ANALYST = "analyst"
    OFFERING = "offering"
    LEGAL_REGULATORY = "legal_regulatory"
    MANAGEMENT = "management"
    NONE = "none"


CATALYSTS: tuple[Catalyst, ...] = tuple(c for c in Catalyst if c is not Catalyst.NONE)

_RATING = (
    r"(strong buy|buy|sell|hold|neutral|overweight|underweight|equal[- ]weight|outperform|underperform|"
    r"market perform|sector perform|peer perform|perform|accumulate|reduce|positive|negative|coverage)"
)
_PERIOD = r"(q[1-4]|[1-4]q|fy\s?\d{2,4}|fiscal( year)?( \d{4})?|(first|second|third|fourth)[- ]quarter|quarter(ly)?|half[- ]year|annual)"
_METRIC = r"(eps|earnings|results|profit|net (income|loss)|revenue|rev\.|sales|ebitda|loss)"
_OUTLOOK_VERB = r"(sees|expects?|expecting|envisions?|forecasts?|projects?|anticipates?|targets)"

_RULES: dict[Catalyst, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Catalyst.EARNINGS: (
        (
            rf"\b(reports?|reported|posts?|posted|announces?|delivers?)\b[^;]*\b{_METRIC}\b",
            r"\bearnings (scheduled|preview|outlook|expectations|call|report|release|beat|miss|date)\b",
            r"\b(preview|ahead|head) of\b[^;]*\b(earnings|results|q[1-4])\b",
            r"\b(on|after|following|ahead of|head of|post)\b( \w+){0,2} (earnings|results)\b",
            r"\b(beats?|miss(es)?|tops?)\b( \w+){0,2} (in )?(q[1-4]|estimates?|est\.?|expectations|the street)\b",
            r"\bnet (income|loss) of\b",
            r"\bq[1-4]\b[^;]*\bcall\b",
        ),
        (),
    ),
    Catalyst.GUIDANCE: (
        (
            rf"\b{_OUTLOOK_VERB}\b[^;]{{0,60}}\b({_METRIC}|production|growth|margin|guidance|performances?)\b",
            r"\b(raises?|lowers?|cuts?|reduces?|reaffirms?|affirms?|maintains?|boosts?|issues?|updates?|"
            r"narrows?|withdraws?|suspends?|provides?|initiates?|backs?|reiterates?)\b[^;]{0,40}"
            r"\b(guidance|outlook|forecast|view)\b",
            r"\bguidance\b",
            r"\b(upbeat|downbeat|weak|strong|soft|raised|lowered) (outlook|forecast|guidance)\b",
        ),
        (r"\b(earnings|industry|market|social media|economic) outlook\b",),
    ),
    Catalyst.FDA_CLINICAL: (
        (
            r"\bfda\b",
            r"\bpdufa\b",
            r"\b(ema|chmp|european commission|health canada|mhra|pmda|nmpa)\b[^;]*\b(approv\w*|authori[sz]ation|grants?|recommend\w*)\b",
            r"\bmarketing authori[sz]ation\b",
            r"\bphase (i{1,3}|iv|[1-4])([ab])?\b",
            r"\b(clinical|pivotal) (trial|study|studies|data|hold|program)\b",
            r"\btrial (data|results|met|fails?|failed|enrollment)\b",
            r"\bstudy (met|fails?|failed)\b",
            r"\b(data|results) from (a |the )?(\w+\W+){0,3}(study|trial)\b",
            r"\btop-?line (data|results)\b",
            r"\b(advisory committee|adcom|complete response letter|crl|breakthrough therapy|orphan drug|"
            r"fast track|510\(k\)|de novo|nda|bla|snda|ind)\b",
            r"\b(usda|regulatory) (clearance|approval)\b",
        ),
        (),
    ),
    Catalyst.MNA: (
        (
            r"\b(acquires?|acquired|acquisition|acquiring|to acquire|merger|merges?|merged|buyout|takeover|"
            r"take-over|tender offer|bidding war|m&a|plan of arrangement|joint venture|spin-?off|spins off|"
            r"divest\w*|go(ing)?[- ]private)\b",
            r"\b(raise|raises|hostile|sweetened|rival|higher) bid\b",
            r"\bbid for\b",
            r"\b(sale|sell|sells|selling|purchase) of\b[^;]*\b(unit|units|business|division|stake|interest|"
            r"assets|segment|subsidiary)\b",
            r"\bto (sell|buy)\b[^;]{0,30}\b(unit|business|division|stake|interest|assets|segment|subsidiary|company)\b",
            r"\bbusiness combination\b",
            r"\bstrategic alternatives?\b",
            r"\bdeal to (buy|acquire)\b",
            r"\bagree(s|d)? to (buy|be acquired|merge|sell)\b",
        ),
        (),
    ),
    Catalyst.ANALYST: (
        (
            r"\b(upgrades?|upgraded|downgrades?|downgraded)\b",
            rf"\b(initiat\w*|reiterat\w*|maintains?|maintained|resum\w*|assum\w*|reinstat\w*)\b[^;]{{0,80}}\b{_RATING}\b",
            r"\b(pt|price target|price objective|po|target price)\b[^;]{0,20}\b(to|from|changes?|raised|lowered|cut)\b",
            r"\b(raises?|raising|lowers?|lowering|cuts?|cutting|boosts?|trims?|announces?)\b[^;]{0,25}"
            r"\b(pt|price target|po|target)\b",
            r"\bprice target changes\b",
            r"\binitiation\b",
            r"\bno longer (bearish|bullish)\b",
            r"\b(recommends? (buying|selling)|moving to (the )?sidelines)\b",
        ),
        (r"\b(debt|credit|sovereign|us|u\.s\.) downgrade\b",),
    ),
    Catalyst.OFFERING: (
        (
            r"\b(offering|ipo|follow-on|secondary offering|mixed shelf|shelf registration|private placement|"
            r"at-the-market|atm program|registered direct)\b",
            r"\bconvertible (senior )?(notes|debentures|bonds)\b",
            r"\bprices? \$?[\d.,]+\s?(m|b|k|million|billion)?\b[^;]{0,30}\b(notes|shares|offering|stock|units)\b",
            r"\bfiles? for\b[^;]{0,20}\b(offering|shelf|ipo|\$)",
        ),
        (),
    ),
    Catalyst.LEGAL_REGULATORY: (
        (
            r"\b(lawsuits?|sues|sued|suing|class action|settle(s|d|ment)?|litigation|court|ruling|judge|jury|"
            r"verdict|investigat\w*|probe|subpoena\w*|indict\w*|antitrust|penalt\w*|recalls?|recalled|"
            r"patent (disputes?|infringement|case)|cease trade order|delist\w*|deficiency notice|"
            r"non-?compliance|regains compliance|wells notice|consent decree|injunction|fbi|doj|ftc|"
            r"department of justice|attorney general)\b",
            r"\bsec (charges|probe|settlement|investigation|subpoena)\b",
            r"\b(fined|fines)\b",
        ),
        (),
    ),
    Catalyst.MANAGEMENT: (
        (
            r"\b(ceo|cfo|coo|cto|chief (executive|financial|operating|technology) officer|president|chair(man|woman)?|"
            r"board( of directors)?|director|executive)\b[^;]{0,60}\b(appoint\w*|names?|named|elect\w*|succeed\w*|"
            r"resign\w*|retire\w*|steps? down|stepping down|depart\w*|hires?|hired|promot\w*|designate|"
            r"ousted|fired|replaced?|leaves|leaving|exit\w*)\b",
            r"\b(appoint\w*|names?|named|elect\w*|hires?|promot\w*|succeed\w*)\b[^;]{0,60}\b(ceo|cfo|coo|cto|chief \w+ officer|"
            r"president|chair(man|woman)?|board|director)\b",
            r"\bannounces (\w+\.? ){1,3}(as )?(new |interim )?(ceo|cfo|coo|cto|president|chair\w*)\b",
            r"\bmanagement changes?\b",
            r"\bsuccession\b",
        ),
        (),
    ),
}

# Period + metric wording ("Q1 EPS $0.57", "Q4 sales vs est.") is reported earnings unless the
# headline is forward-looking (guidance fired): "Sees Q1 EPS $0.57-0.62" is guidance only.
_EARNINGS_UNLESS_GUIDANCE = (
    re.compile(rf"\b{_PERIOD}\b[^;]{{0,40}}\b{_METRIC}\b"),
    re.compile(r"\beps\b[^;]*\b(beats?|miss(es|ed)?|tops?|inline|in-line|vs\.?)\b"),
)

_COMPILED: dict[Catalyst, tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]] = {
    cls: (tuple(re.compile(p) for p in yes), tuple(re.compile(p) for p in no))
    for cls, (yes, no) in _RULES.items()
}


def classify(headline: str) -> tuple[Catalyst, ...]:
    """Every catalyst the headline announces, in ``CATALYSTS`` order; ``(NONE,)`` when none."""
    text = " ".join(headline.lower().split())
    found = {
        cls
        for cls in CATALYSTS
        if any(p.search(text) for p in _COMPILED[cls][0])
        and not any(p.search(text) for p in _COMPILED[cls][1])
    }
    if Catalyst.GUIDANCE not in found and any(p.search(text) for p in _EARNINGS_UNLESS_GUIDANCE):
        found.add(Catalyst.EARNINGS)
    return tuple(c for c in CATALYSTS if c in found) or (Catalyst.NONE,)


# An SEC 8-K states its event by item number, so a filing needs no guessing from words: these items
# carry a catalyst (Form 8-K General Instructions). Others (1.01 agreements, 7.01 Reg FD, 8.01
# other events, 9.01 exhibits...) say too little on their own. Provider tags spell them "8-K:2.02".
FORM_8K_ITEMS: dict[str, Catalyst] = {
    "1.03": Catalyst.LEGAL_REGULATORY,  # bankruptcy or receivership
    "2.01": Catalyst.MNA,  # completion of acquisition or disposition of assets
    "2.02": Catalyst.EARNINGS,  # results of operations and financial condition
    "3.01": Catalyst.LEGAL_REGULATORY,  # notice of delisting
    "3.02": Catalyst.OFFERING,  # unregistered sales of equity securities
    "5.02": Catalyst.MANAGEMENT,  # departure or appointment of directors or officers
}


def classify_item(headline: str, tags: tuple[str, ...] = ()) -> tuple[Catalyst, ...]:
    """``classify`` of the headline plus what structured provider tags state (``8-K:2.02``)."""
    found: set[Catalyst] = {c for c in classify(headline) if c is not Catalyst.NONE}
    for tag in tags:
        form, _, code = tag.partition(":")
        if form.upper() in ("8-K", "8-K/A") and code in FORM_8K_ITEMS:
            found.add(FORM_8K_ITEMS[code])
    return tuple(c for c in CATALYSTS if c in found) or (Catalyst.NONE,)


def parse_labels(text: str) -> frozenset[Catalyst]:
    """``earnings|guidance`` -> the set; an unknown name raises ``ValueError`` (fixture hygiene)."""
    out = set()
    for part in text.split("|"):
        name = part.strip().lower()
        try:
            out.add(Catalyst(name))
        except ValueError:
            raise ValueError(f"unknown catalyst {name!r}") from None
    return frozenset(out)
