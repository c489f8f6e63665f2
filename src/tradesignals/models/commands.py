"""``tradesignals train`` and ``tradesignals evaluate``: everything but the argument parsing.

The Typer commands in ``cli.py`` only parse arguments and hand over ``typer.echo``; what the commands
promise — which input is refused and how, what is printed, the exit code — lives here, where tests
reach it without a subprocess. Every refusal is one line naming the problem (a missing file, an
unknown signal type, a bad date, no usable rows, a feature-set mismatch), never a traceback.

Error lines go to ``err`` as the bare message (the CLI styles its own ``error:``); without an
``err`` they go to ``echo`` prefixed ``error: ``.

Exit codes: 0 done; 1 the work ran but has nothing to show (no row after the model's training cut:
the data lies wholly inside its training period); 2 bad input (the user can fix the command or the
data).

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
from tradesignals.models.evaluate import EvaluationError, InsideTrainingPeriod, evaluate
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
    include_unseen_symbols_in_period: bool = False,
    online: bool = False,
    echo: Echo = print,
    err: Echo | None = None,
    prices: str | None = None,
) -> int:
    """Evaluate the latest model in ``model_dir`` on the rows of ``data`` after its training cut.

    ``include_unseen_symbols_in_period`` adds a separate, warned section for in-period rows of
    symbols the model never trained on; the warning also goes to ``err`` (stderr on the CLI), so it
    is seen even when the JSON goes to a file. ``online`` adds the prequential online recalibration.
    """
    warn = err or echo
    err = err or _prefixed(echo)
    paths = _paths(data)
    try:
        _check_files(paths)
        basis = parse_prices(prices)
        used = _prices_used(paths, basis)
        report = evaluate(
            model_dir,
            paths,
            name=name,
            prices=basis,
            include_unseen_symbols_in_period=include_unseen_symbols_in_period,
            online=online,
        )
        report["prices"] = used
    except InsideTrainingPeriod as exc:
        err(_one_line(exc))
        return EXIT_NOTHING
    except (*_USER_ERRORS, ValueError) as exc:
        err(_one_line(exc))
        return EXIT_BAD_INPUT
    if not report["n"]:
        missing = report["skipped"]["missing_required_features"]
        err(f"no row after the model's training cut could be scored ({missing:,} lack a required feature)")
        return EXIT_NOTHING
    extra = report.get("in_period_unseen_symbols")
    if extra is not None and extra["n"]:
        warn(
            f"warning: {extra['n']:,} in-period rows of {len(extra['symbols'])} symbols the model never "
            "trained on are reported separately; their dates were trained on, so they overstate its skill"
        )
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
    lines = [
        f"model {r['model']['name']}/{r['model']['version']} ({r['model']['feature_set']}), "
        f"trained {r['model']['training_range']['first'][:10]} to {r['model']['training_range']['last'][:10]}",
        f"scored {r['n']:,} rows after the training cut, from {str(r['scored']['first'])[:10]} to "
        f"{str(r['scored']['last'])[:10]} ({r.get('prices', 'raw')} prices); skipped: {skipped}",
    ]
    lines += _section_lines(r)
    pat = r["precision_at_threshold"]
    lines.append(
        f"base rate {_f(r['base_rate'])}; p >= {pat['threshold']}: {pat['n_above']:,} rows, "
        f"hit rate {_f(pat['precision'])}"
    )
    lines.append("hit rate by decile: " + " ".join(_f(v, 2) for v in r["hit_rate_by_decile"]))
    online = r.get("online")
    if online is not None:
        a, b = online["without"], online["with"]
        lines.append(
            f"online recalibration (prequential, {online['learned']:,} outcomes learnt, mean weight "
            f"{_f(online['mean_weight'])}): ECE equal-mass {_f(a['ece_equal_mass'])} -> "
            f"{_f(b['ece_equal_mass'])}, log loss {_f(a['log_loss'], 4)} -> {_f(b['log_loss'], 4)}, "
            f"slope {_f(a['calibration_slope'], 2)} -> {_f(b['calibration_slope'], 2)}"
        )
    extra = r.get("in_period_unseen_symbols")
    if extra is not None:
        twins = ", ".join(f"{t['symbol']}~{t['twin_of']}" for t in extra["twins"]) or "none"
        lines.append(
            f"WARNING, reported apart: {extra['n']:,} in-period rows of {len(extra['symbols'])} symbols "
            f"never trained on (share-class twins counted as trained: {twins}); {extra['warning']}"
        )
        if extra["n"]:
            lines += _section_lines(extra)
    return lines


def _section_lines(r: dict[str, Any]) -> list[str]:
    """The table of a section: model and baselines, then the intervals."""
    lines = [
        f"{'':14}{'AUC':>8}{'log loss':>10}{'Brier':>8}{'ECE mass':>10}{'ECE width':>11}"
        f"{'cal. int.':>11}{'cal. slope':>12}"
    ]
    for label, m in (
        ("model", r),
        ("always long", r["baselines"]["always_long"]),
        ("momentum 20", r["baselines"]["momentum_20"]),
    ):
        lines.append(
            f"{label:14}{_f(m['auc']):>8}{_f(m['log_loss'], 4):>10}{_f(m['brier'], 4):>8}"
            f"{_f(m['ece_equal_mass']):>10}{_f(m['ece']):>11}{_f(m['calibration_intercept'], 2):>11}"
            f"{_f(m['calibration_slope'], 2):>12}"
        )
    iv = r["intervals"]
    parts = [f"AUC {_ci(iv['auc'])}"]
    for key, label in (("always_long", "always long"), ("momentum_20", "momentum 20")):
        parts.append(f"log loss - {label} {_ci(iv['baselines'][key]['log_loss_diff'], 4)}")
    lines.append(
        f"{int(iv['level'] * 100)} % intervals (block bootstrap, blocks of {iv['block_dates']} dates, "
        f"{iv['n_resamples']} resamples): " + "; ".join(parts)
    )
    return lines


def _ci(v: dict[str, float | None], digits: int = 3) -> str:
    return f"{_f(v['estimate'], digits)} [{_f(v['lo'], digits)}, {_f(v['hi'], digits)}]"


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
