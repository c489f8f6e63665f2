"""Backtest results, read-only: what ``tradesignals backtest`` wrote under ``TS_HOME/backtests/<id>``.

Public track-record material (the web app shows it to anyone), so no account is asked for. The API
never runs a backtest: it serves the files the CLI wrote whole (its atomic rename means a folder
either holds all of them or is a hidden ``.tmp`` one, which is never listed). An id is a folder
name and nothing else — letters, digits, ``.``, ``_``, ``-``, not starting with a dot — and the
resolved folder must sit directly in the results folder, so no id reaches a file outside it.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut

router = APIRouter(prefix="/api/backtests", tags=["backtests"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ID = re.compile(ID_PATTERN)
BacktestId = Annotated[str, PathParam(pattern=ID_PATTERN, description="A result folder's name.")]
_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such backtest."}}
# The report draws with inline SVG and CSS only: let it run nothing and load nothing.
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class BacktestItem(BaseModel):
    """One result in the list: its id and the figures a table of backtests shows."""

    id: str
    start: str | None = Field(description="First instant traded (ISO 8601).")
    end: str | None = Field(description="Last instant read (ISO 8601).")
    profile: str | None
    data: str | None = Field(description="The data file's name.")
    model: str | None = Field(description="Model version, when a registered model scored the bars.")
    in_sample: bool
    trades: int | None
    total_return: float | None
    sharpe: float | None
    max_drawdown: float | None = Field(description="Positive fraction (0.25: a 25 % fall).")


class EquityPointOut(BaseModel):
    timestamp: str
    equity: float
    cash: float
    exposure: float
    benchmark: float | None


def _folder(root: Path, backtest_id: str) -> Path | None:
    """The result folder for ``backtest_id`` if it exists directly in ``root`` and holds a summary."""
    if not _ID.match(backtest_id):
        return None
    folder = (root / backtest_id).resolve()
    if folder.parent != root.resolve() or not (folder / "summary.json").is_file():
        return None
    return folder


def _get(services: ServicesDep, backtest_id: str) -> Path:
    folder = _folder(services.settings.backtests_dir, backtest_id)
    if folder is None:
        raise HTTPException(status_code=404, detail=f"no backtest {backtest_id!r}")
    return folder


def _item(backtest_id: str, s: dict[str, Any]) -> BacktestItem:
    settings, data, model = s.get("settings") or {}, s.get("data") or {}, s.get("model") or {}
    version = model.get("version")
    return BacktestItem(
        id=backtest_id,
        start=settings.get("from"),
        end=settings.get("to"),
        profile=settings.get("profile"),
        data=data.get("file"),
        model=version if isinstance(version, str) else None,
        in_sample=bool(s.get("in_sample")),
        trades=s.get("trades"),
        total_return=s.get("total_return"),
        sharpe=s.get("sharpe"),
        max_drawdown=s.get("max_drawdown"),
    )


@router.get("", response_model=list[BacktestItem])
def list_backtests(services: ServicesDep) -> list[BacktestItem]:
    """Every complete result, newest id first (ids the CLI makes start with the UTC time)."""
    root = services.settings.backtests_dir
    if not root.is_dir():
        return []
    items = []
    for child in sorted(root.iterdir(), key=lambda p: p.name, reverse=True):
        if _folder(root, child.name) is None:
            continue
        try:
            summary = json.loads((child / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a result the CLI wrote: leave it out rather than fail the list
        if isinstance(summary, dict):
            items.append(_item(child.name, summary))
    return items


@router.get("/{backtest_id}", responses=_404)
def get_backtest(backtest_id: BacktestId, services: ServicesDep) -> Response:
    """The result's ``summary.json`` as written (metrics, settings, data and model versions)."""
    body = (_get(services, backtest_id) / "summary.json").read_bytes()
    return Response(content=body, media_type="application/json")


@router.get("/{backtest_id}/report", response_class=HTMLResponse, responses=_404)
def get_report(backtest_id: BacktestId, services: ServicesDep) -> HTMLResponse:
    """The self-contained ``report.html``."""
    path = _get(services, backtest_id) / "report.html"
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"backtest {backtest_id!r} has no report")
    return HTMLResponse(path.read_text(encoding="utf-8"), headers={"Content-Security-Policy": _REPORT_CSP})


@router.get("/{backtest_id}/equity", response_model=list[EquityPointOut], responses=_404)
def get_equity(backtest_id: BacktestId, services: ServicesDep) -> list[EquityPointOut]:
    """``equity.csv`` as JSON points: the strategy's equity, cash, exposure and the benchmark."""
    with (_get(services, backtest_id) / "equity.csv").open(newline="", encoding="utf-8") as f:
        return [
            EquityPointOut(
                timestamp=row["timestamp"],
                equity=float(row["equity"]),
                cash=float(row["cash"]),
                exposure=float(row["exposure"]),
                benchmark=None if row["benchmark"] in ("nan", "") else float(row["benchmark"]),
            )
            for row in csv.DictReader(f)
        ]


@router.get("/{backtest_id}/trades.csv", response_class=Response, responses=_404)
def get_trades(backtest_id: BacktestId, services: ServicesDep) -> Response:
    """``trades.csv`` as written (one row per trade; columns in the README)."""
    body = (_get(services, backtest_id) / "trades.csv").read_bytes()
    return Response(content=body, media_type="text/csv")
