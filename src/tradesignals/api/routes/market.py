"""Market data for charts and clients: bars from the history store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from tradesignals.api.dbpool import DbPoolDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import MAX_INT64, ErrorOut
from tradesignals.domain.market import Timeframe, to_datetime, to_ns

router = APIRouter(prefix="/api/market", tags=["market"])

MAX_BARS = 50_000

# Bars are stamped in int64 nanoseconds since the epoch: these are the first and last instants a
# bound can name (1677-09-21T00:12:43.145224193Z and 2262-04-11T23:47:16.854775807Z).
MIN_NS = -MAX_INT64 - 1
MAX_NS = MAX_INT64


class BarOut(BaseModel):
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def _ns(name: str, value: str | None) -> int | None:
    """A date (midnight UTC) or an ISO time with an offset; a naive time is refused, not guessed."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return _bounded(name, value, to_ns(datetime(d.year, d.month, d.day, tzinfo=UTC)))
        when = datetime.fromisoformat(value)
        if when.tzinfo is not None:
            when.astimezone(UTC)  # OverflowError here, not later, for 0001-01-01T00:00+14:00
    except ValueError:
        raise HTTPException(422, detail=f"{name}: {value!r} is not a date or an ISO time") from None
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        raise HTTPException(422, detail=f"{name}: {value!r} is outside {_RANGE}") from None
    if when.tzinfo is None:
        raise HTTPException(422, detail=f"{name}: {value} has no timezone; add Z or an offset")
    return _bounded(name, value, to_ns(when))


_RANGE = "the representable range 1677-09-21T00:12:43.145224193Z .. 2262-04-11T23:47:16.854775807Z"


def _bounded(name: str, value: str, ns: int) -> int:
    """Refused past the int64 nanosecond range, never clamped: ``end=2262-04-12`` silently
    answering ``[]`` (or a 500 from the store) would hide the caller's mistake."""
    if not MIN_NS <= ns <= MAX_NS:
        raise HTTPException(422, detail=f"{name}: {value} is outside {_RANGE}")
    return ns


@router.get(
    "/{symbol}/bars",
    response_model=list[BarOut],
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def bars(
    services: ServicesDep,
    pool: DbPoolDep,
    symbol: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")],
    timeframe: Timeframe = Timeframe.D1,
    start: Annotated[
        str | None, Query(max_length=40, description="Inclusive: a date or ISO time with offset.")
    ] = None,
    end: Annotated[
        str | None, Query(max_length=40, description="Exclusive: a date or ISO time with offset.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BARS)] = 5_000,
) -> list[BarOut]:
    """Bars of one symbol in ``[start, end)``, oldest first; the last ``limit`` when the range holds more."""
    sym = symbol.upper()
    start_ns, end_ns = _ns("start", start), _ns("end", end)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise HTTPException(422, detail=f"empty range: end {end} is not after start {start}")
    store = services.bars
    span = await pool.run(store.range, timeframe, sym)
    if span is None:
        raise HTTPException(404, detail=f"no {timeframe.value} bars for {sym}")
    frame = await pool.run(store.read, timeframe, [sym], start_ns, end_ns)
    frame = frame.tail(limit)
    ts = frame["ts"].to_numpy()
    cols = [frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    return [
        BarOut(
            ts=to_datetime(int(ts[i])),
            open=cols[0][i],
            high=cols[1][i],
            low=cols[2][i],
            close=cols[3][i],
            volume=cols[4][i],
        )
        for i in range(len(frame))
    ]
