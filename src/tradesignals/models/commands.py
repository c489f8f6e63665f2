"""``tradesignals train`` and ``tradesignals evaluate``: everything but the argument parsing.

The Typer commands in ``cli.py`` only parse arguments and hand over ``typer.echo``; what the commands
promise — which input is refused and how, what is printed, the exit code — lives here, where tests
reach it without a subprocess. Every refusal is one line naming the problem (a missing file, an
unknown signal type, a bad date, no usable rows, a feature-set mismatch), never a traceback.

Error lines go to ``err`` as the bare message (the CLI styles its own ``error:``); without an
``err`` they go to ``echo`` prefixed ``error: ``.

Exit codes: 0 done; 1 the work ran but has nothing to show (no rows the model never trained on);
2 bad input (the user can fix the command or the data).

Wiring, for the CLI::

    with rich_progress() as bar:
        code = train_command(data, out, signal_type=..., until=..., echo=typer.echo, progress=bar)
    raise typer.Exit(code)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradesignals.features.catalog import FeatureSetMismatch, UnknownFeatureSet
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ohlcv_file import PriceChoice, parse_prices, price_choice
from tradesignals.models.dataset import DatasetError, parse_signal_type
from tradesignals.models.evaluate import EvaluationError, evaluate
from tradesignals.models.registry import ModelRegistryError
from tradesignals.models.train import TrainConfig, TrainError, TrainProgress, parse_until, train

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_NOTHING",
    "EXIT_OK",
    "evaluate_command",
    "rich_progress",
    "train_command",
]

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_BAD_INPUT = 2

Echo = Callable[[str], None]
PathsArg = str | Path | Sequence[str | Path]

# What a user can cause and fix; anything else is a bug and should show its traceback.
_USER_ERRORS = (
    DatasetError,
    TrainError,
    EvaluationError,
    FeedError,
    FeatureSetMismatch,
    UnknownFeatureSet,
    ModelRegistryError,
    OSError,
)


def train_command(
    data: PathsArg,
    out: str | Path,
    *,
    signal_type: str = "swing",
    until: str | None = None,
    as_json: bool = False,
    echo: Echo = print,
    err: Echo | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    config: TrainConfig | None = None,
    prices: str | None = None,
) -> int:
    """Train on ``data`` (one or more OHLCV files) and save the model into the registry ``out``.

    Checks what it can before the minute of work starts (files, signal type, date, ``out`` not a
    file), then trains, printing a two-line summary (or ``as_json``, a JSON object). ``config``
    defaults to ``TrainConfig()``: the settings the model card was measured with. ``prices``
    (``--prices``: adjusted, raw, or None for adjusted where a file has an adjusted close) is
    stated in the output.
    """
    err = err or _prefixed(echo)
    paths = _paths(data)
    try:
        _check_files(paths)
        basis = parse_prices(prices)
        used = _prices_used(paths, basis)
        kind = parse_signal_type(signal_type)
        parse_until(until)
        out_path = Path(out)
        if out_path.exists() and not out_path.is_dir():
            raise TrainError(f"{out_path}: exists and is not a directory")
        result = train(
            paths, out_path, kind, until, progress=progress, config=config or TrainConfig(), prices=basis
        )
    except (*_USER_ERRORS, ValueError) as exc:
        err(_one_line(exc))
        return EXIT_BAD_INPUT
    m = result.metrics
    base = m["baselines"]
    summary = {
        "model": result.name,
        "version": result.version,
        "location": result.location,
        "rows": result.rows,
        "symbols": m["training"]["symbols"],
        "folds": len(result.folds),
        "training_range": list(result.metadata.training_range),
        "oof_auc": m["auc"],
        "oof_ece": m["ece"],
        "oof_log_loss": m["log_loss"],
        "always_long_auc": base["always_long"]["auc"],
        "always_long_log_loss": base["always_long"]["log_loss"],
        "momentum_20_auc": base["momentum_20"]["auc"],
        "momentum_20_log_loss": base["momentum_20"]["log_loss"],
        "prices": used,
        "seconds": round(result.seconds.get("total", result.seconds.get("train", 0.0)), 2),
    }
    if as_json:
        echo(json.dumps(summary, allow_nan=False))
    else:
        echo(
            f"saved {result.name}/{result.version} in {out}: {result.rows:,} rows, "
            f"{summary['symbols']} symbols, {summary['folds']} folds, {used} prices, "
            f"{summary['seconds']:.1f} s"
        )
        echo(
            f"out of fold: AUC {_f(m['auc'])}, log loss {_f(m['log_loss'])}, ECE {_f(m['ece'])}; "
            f"always long AUC {_f(base['always_long']['auc'])}, log loss {_f(base['always_long']['log_loss'])}; "
            f"momentum AUC {_f(base['momentum_20']['auc'])}, log loss {_f(base['momentum_20']['log_loss'])}"
        )
    return EXIT_OK


def evaluate_command(
    model_dir: str | Path,
    data: PathsArg,
    *,
    as_json: bool = False,
    name: str | None = None,
    echo: Echo = print,
    err: Echo | None = None,
    prices: str | None = None,
) -> int:
    """Evaluate the latest model in ``model_dir`` on the rows of ``data`` it never trained on."""
    err = err or _prefixed(echo)
    paths = _paths(data)
    try:
        _check_files(paths)
        basis = parse_prices(prices)
        used = _prices_used(paths, basis)
        report = evaluate(model_dir, paths, name=name, prices=basis)
        report["prices"] = used
    except (*_USER_ERRORS, ValueError) as exc:
        err(_one_line(exc))
        return EXIT_BAD_INPUT
    if not report["n"]:
        skipped = report["skipped"]["inside_training_range"]
        err(
            f"no row of this data lies outside the model's training range or symbols "
            f"({skipped:,} rows skipped as inside it)"
        )
        return EXIT_NOTHING
    if as_json:
        echo(json.dumps(report, allow_nan=False))
    else:
        for line in _report_lines(report):
            echo(line)
    return EXIT_OK


@contextmanager
def rich_progress() -> Iterator[Callable[[TrainProgress], None]]:
    """A rich progress bar that advances once per walk-forward fold and once for the final refit."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("building the dataset", total=None)

        def update(p: TrainProgress) -> None:
            bar.update(task, total=p.total, completed=p.done, description=p.message)

        yield update


def _report_lines(r: dict[str, Any]) -> list[str]:
    skipped = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in r["skipped"].items())
    pat = r["precision_at_threshold"]
    lines = [
        f"model {r['model']['name']}/{r['model']['version']} ({r['model']['feature_set']}), "
        f"trained {r['model']['training_range']['first'][:10]} to {r['model']['training_range']['last'][:10]}",
        f"scored {r['n']:,} rows from {str(r['scored']['first'])[:10]} to {str(r['scored']['last'])[:10]} "
        f"({r.get('prices', 'raw')} prices); skipped: {skipped}",
        f"{'':14}{'AUC':>8}{'log loss':>10}{'Brier':>8}{'ECE':>8}",
    ]
    for label, m in (
        ("model", r),
        ("always long", r["baselines"]["always_long"]),
        ("momentum 20", r["baselines"]["momentum_20"]),
    ):
        lines.append(
            f"{label:14}{_f(m['auc']):>8}{_f(m['log_loss']):>10}{_f(m['brier']):>8}{_f(m['ece']):>8}"
        )
    lines.append(
        f"base rate {_f(r['base_rate'])}; p >= {pat['threshold']}: {pat['n_above']:,} rows, "
        f"hit rate {_f(pat['precision'])}"
    )
    lines.append("hit rate by decile: " + " ".join(_f(v, 2) for v in r["hit_rate_by_decile"]))
    return lines


def _prefixed(echo: Echo) -> Echo:
    """Errors through ``echo`` read ``error: …``; a caller's own ``err`` adds its own styling."""

    def err(message: str) -> None:
        echo(f"error: {message}")

    return err


def _paths(data: PathsArg) -> list[Path]:
    return [Path(data)] if isinstance(data, str | Path) else [Path(p) for p in data]


def _check_files(paths: Sequence[Path]) -> None:
    if not paths:
        raise DatasetError("no data file given (--data PATH)")
    for p in paths:
        if not p.exists():
            raise DatasetError(f"{p}: no such file")
        if p.is_dir():
            raise DatasetError(f"{p}: is a directory, not an OHLCV file")


def _prices_used(paths: Sequence[Path], basis: PriceChoice | None) -> str:
    """``adjusted`` or ``raw`` as the files will be read (``adjusted+raw`` when they differ)."""
    used = sorted({price_choice(p, basis) for p in paths})
    return "+".join(used)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and not text:
        return type(exc).__name__
    return text or type(exc).__name__


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
