"""Command line: ``tradesignals demo | serve | --version``.

Every failure a person can cause (a bad setting, a missing file, a busy port, an unreachable
service) ends with one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import faulthandler
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tradesignals import __version__
from tradesignals.config import ConfigError, Mode, Settings, load_settings
from tradesignals.logging_setup import configure_logging
from tradesignals.marketdata.feeds.base import Feed, FeedError

if TYPE_CHECKING:
    from tradesignals.domain.market import AssetClass
    from tradesignals.wiring import Services

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="tradesignals: calibrated trading signals."
)
console = Console(stderr=True)
ROLES = ("api", "engine", "ingest", "explain")


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tradesignals {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Market data in, calibrated signals out, every outcome on a verifiable ledger."""


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            why = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            )
            raise ConfigError(f"port {port} on {host} {why}; pick another with --port") from None


async def _run(settings: Settings, roles: frozenset[str], banner: str) -> None:
    from tradesignals.wiring import build_feed, build_services

    done = asyncio.Event()
    if "api" not in roles:
        # Installed before anything connects, so a signal during start-up is an orderly stop too
        # (uvicorn installs its own handlers for the api role).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
    feed: Feed | None = build_feed(settings) if "ingest" in roles else None
    services = await build_services(settings)
    if "api" in roles:
        await _serve_http(settings, services, roles, feed, banner)
    else:
        await _run_headless(services, roles, feed, banner, done)


async def _serve_http(
    settings: Settings, services: Services, roles: frozenset[str], feed: Feed | None, banner: str
) -> None:
    import uvicorn

    from tradesignals.api.app import create_app
    from tradesignals.api.http_limits import uvicorn_config

    app_ = create_app(services, roles=roles, feed=feed)
    server = uvicorn.Server(uvicorn_config(app_, settings))
    typer.echo(banner.format(url=f"http://{settings.host}:{settings.port}"))
    await server.serve()


_FINITE = frozenset({"ingest", "recorder"})  # role tasks that end with the feed, in this order


async def _run_headless(
    services: Services, roles: frozenset[str], feed: Feed | None, banner: str, done: asyncio.Event
) -> None:
    """Roles without HTTP (engine, ingest) run until SIGINT/SIGTERM, then stop cleanly.

    A feed that ends (a replay) ends the process too, once its recorder has drained what the feed
    published (``record_bars``'s ``drain``): history must not miss the replay's last bars.
    """
    from tradesignals.wiring import start_roles

    start_roles(services, set(roles), feed)
    typer.echo(banner.format(url="(no HTTP)"))
    try:
        running = set(services.tasks)
        waiter = asyncio.create_task(done.wait())
        while True:
            finished, running = await asyncio.wait({*running, waiter}, return_when=asyncio.FIRST_COMPLETED)
            running.discard(waiter)
            for task in finished - {waiter}:
                if not task.cancelled() and task.exception() is not None:
                    raise ConfigError(f"role task {task.get_name()} failed: {task.exception()}")
            names = {t.get_name() for t in finished}
            # The feed ended: wait on for the recorder alone; anything else ending ends the process.
            if (
                waiter in finished
                or not names <= _FINITE
                or not any(t.get_name() in _FINITE for t in running)
            ):
                break
        waiter.cancel()
    finally:
        # If shutdown ever wedges, say where instead of hanging silently until SIGKILL.
        faulthandler.dump_traceback_later(10, exit=True)
        await services.close()
        faulthandler.cancel_dump_traceback_later()


def _settings(**overrides: object) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    feed: Annotated[str, typer.Option(help="sim | replay:PATH")] = "sim",
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (inf = full speed).")
    ] = 60.0,
    symbols: Annotated[int, typer.Option(help="Simulated symbols.")] = 20,
    min_edge: Annotated[
        float,
        typer.Option(
            help="Publish only signals whose confidence beats the model's base rate by this much "
            "(probability points; the demo shows all)."
        ),
    ] = -1.0,
    news: Annotated[
        str | None,
        typer.Option(
            "--news",
            help="replay:PATH — replay a news file (Benzinga/StockNet/native CSV or JSONL) beside the "
            "market feed; GET /api/news serves it with sentiment and catalysts.",
        ),
    ] = None,
) -> None:
    """Everything embedded in one process: simulator or replay → engine → API and WebSocket.

    With the simulator and no registered model, a small model is trained on simulated history at
    start (a few seconds); it has no edge on a random walk, and its confidences say so.
    """
    try:
        settings = _settings(
            mode=Mode.EMBEDDED,
            port=port,
            host=host,
            feed=feed,
            speed=speed,
            sim_symbols=symbols,
            min_edge=min_edge,
            train_demo_model=True,
            news_feed=news,
        )
        configure_logging(settings.log_level)
        _check_port(settings.host, settings.port)
        asyncio.run(
            _run(
                settings,
                frozenset(ROLES),
                "tradesignals demo on {url}  (API {url}/api/signals, docs {url}/docs, WebSocket {url}/ws)",
            )
        )
    except (ConfigError, FeedError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def serve(
    role: Annotated[
        list[str] | None, typer.Option(help="api | engine | ingest | explain (repeatable); default all.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (api role).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    feed: Annotated[str | None, typer.Option(help="sim | replay:PATH (ingest role).")] = None,
) -> None:
    """Server mode (PostgreSQL + Redis Streams); run roles in separate processes to scale out."""
    try:
        roles = frozenset(role or ROLES)
        unknown = roles - set(ROLES)
        if unknown:
            raise ConfigError(f"unknown role {sorted(unknown)[0]!r}; expected api, engine, ingest or explain")
        settings = _settings(mode=Mode.SERVER, port=port, host=host, feed=feed)
        configure_logging(settings.log_level)
        if "api" in roles:
            _check_port(settings.host, settings.port)
        asyncio.run(_run(settings, roles, "tradesignals serve (" + ",".join(sorted(roles)) + ") on {url}"))
    except (ConfigError, FeedError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="OHLCV files: CSV (gzip ok) or Parquet.")],
    timeframe: Annotated[
        str | None, typer.Option(help="1m|5m|15m|1h|1d; inferred from the data when omitted.")
    ] = None,
    tz: Annotated[
        str | None, typer.Option(help="Time zone of times written without an offset (default UTC).")
    ] = None,
    prices: Annotated[
        str | None,
        typer.Option(help="adjusted|raw: scale by the Adj Close column (default when present) or not."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load OHLCV files into the history store (idempotent: loading a file twice changes nothing)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from tradesignals.domain.market import Timeframe
    from tradesignals.marketdata.ingest_files import ingest_files
    from tradesignals.marketdata.ohlcv_file import parse_prices
    from tradesignals.storage.base import StorageError
    from tradesignals.wiring import build_bar_store

    try:
        settings = _settings()
        tf = Timeframe.parse(timeframe) if timeframe else None
        price_basis = parse_prices(prices)
        for path in paths:
            if not path.is_file():
                raise FeedError(f"{path}: no such file")
        if settings.mode is Mode.EMBEDDED:
            settings.home.mkdir(parents=True, exist_ok=True)
        store = build_bar_store(settings)
        try:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
                disable=as_json or not console.is_terminal,
            ) as bar:
                task = bar.add_task("ingesting", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = ingest_files(
                    list(paths), store, timeframe=tf, progress=progress, tz=tz, prices=price_basis
                )
        finally:
            store.close()
    except (ConfigError, FeedError, StorageError, ValueError) as exc:
        raise _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    data = summary.to_json()
    if as_json:
        typer.echo(json.dumps(data))
        return
    _print_ingest(data)


def _print_ingest(data: dict[str, object]) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = Console()
    table = Table(show_header=False, box=None)
    for key in (
        "files",
        "rows_read",
        "rows_loaded",
        "inserted",
        "updated",
        "unchanged",
        "rows_rejected",
        "symbols",
        "timeframe",
        "prices",
        "first_ts",
        "last_ts",
        "seconds",
    ):
        table.add_row(key.replace("_", " "), str(data[key]))
    rejected = data.get("rejected") or {}
    if isinstance(rejected, dict):
        for reason, count in rejected.items():
            table.add_row(escape(f"  rejected: {reason}"), str(count))
    table.add_row("rows flagged", str(data.get("rows_flagged", 0)))
    flagged = data.get("flagged") or {}
    if isinstance(flagged, dict):
        for reason, count in flagged.items():
            table.add_row(escape(f"  flagged: {reason}"), str(count))
    out.print(table)


@app.command()
def bench(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these scripts (name without .py).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: script name → its figures.")
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Folder of benchmark scripts.")] = Path("bench"),
    timeout: Annotated[int, typer.Option(help="Seconds allowed per script.")] = 600,
) -> None:
    """Run the benchmark scripts (each prints one JSON object) and gather their figures."""
    import subprocess
    import time as _time

    scripts = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    if only:
        scripts = [p for p in scripts if p.stem in set(only)]
    if not scripts:
        raise _fail(f"no benchmark scripts in {directory}" + (f" named {', '.join(only)}" if only else ""))
    results: dict[str, object] = {}
    for script in scripts:
        t0 = _time.perf_counter()
        if not as_json:
            console.print(f"[bold]{script.stem}[/] …", highlight=False)
        try:
            proc = subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            results[script.stem] = {"error": f"timed out after {timeout} s"}
            continue
        results[script.stem] = _last_json(proc.stdout) if proc.returncode == 0 else None
        if results[script.stem] is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results[script.stem] = {"error": f"exit {proc.returncode}: {tail}"}
        if not as_json:
            console.print_json(json.dumps(results[script.stem]))
            console.print(f"  ({_time.perf_counter() - t0:.1f} s)", highlight=False)
    if as_json:
        typer.echo(json.dumps(results))


@app.command()
def features(
    path: Annotated[Path, typer.Argument(help="OHLCV file: CSV (gzip ok) or Parquet, as ingest reads it.")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file.")],
    timeframe: Annotated[str | None, typer.Option(help="1m|5m|15m|1h|1d; inferred when omitted.")] = None,
    tz: Annotated[
        str | None, typer.Option(help="Time zone of times written without an offset (default UTC).")
    ] = None,
    prices: Annotated[
        str | None,
        typer.Option(help="adjusted|raw: scale by the Adj Close column (default when present) or not."),
    ] = None,
    asset_class: Annotated[
        str | None,
        typer.Option(help="equity|crypto for every symbol in the file; default: from each symbol's name."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Batch feature table: one row per symbol and bar — timestamp, symbol, then the features."""
    from tradesignals.domain.market import Timeframe
    from tradesignals.features.compute_file import compute_features_file
    from tradesignals.marketdata.ohlcv_file import parse_prices

    try:
        tf = Timeframe.parse(timeframe) if timeframe else None
        declared = _asset_class(asset_class)
        if not path.is_file():
            raise FeedError(f"{path}: no such file")
        summary = compute_features_file(
            path, out, tz=tz, timeframe=tf, prices=parse_prices(prices), asset_class=declared
        )
    except (FeedError, ValueError, OSError) as exc:
        raise _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    data = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(data))
    else:
        for key, value in data.items():
            typer.echo(f"{key.replace('_', ' '):>22}  {value}")


def _asset_class(text: str | None) -> AssetClass | None:
    from tradesignals.domain.market import AssetClass

    if text is None:
        return None
    try:
        return AssetClass(text.strip().lower())
    except ValueError:
        known = ", ".join(a.value for a in AssetClass)
        raise ValueError(f"--asset-class: unknown asset class {text!r}; expected {known}") from None


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", help="OHLCV file(s) to train on (repeatable).")],
    out: Annotated[Path, typer.Option("--out", help="Model registry directory.")],
    signal_type: Annotated[str, typer.Option(help="swing (daily bars) or day (intraday).")] = "swing",
    until: Annotated[str | None, typer.Option(help="Train only on labels resolved before this date.")] = None,
    prices: Annotated[
        str | None,
        typer.Option(help="adjusted|raw: scale by the Adj Close column (default when present) or not."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Purged walk-forward training of the calibrated ensemble; saves a new version in the registry."""
    from tradesignals.models.commands import rich_progress, train_command

    def err(message: str) -> None:
        console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)

    if as_json or not console.is_terminal:
        code = train_command(data, out, signal_type=signal_type, until=until, as_json=as_json,
                             echo=typer.echo, err=err, prices=prices)  # fmt: skip
    else:
        with rich_progress() as progress:
            code = train_command(data, out, signal_type=signal_type, until=until, as_json=as_json,
                                 echo=typer.echo, err=err, progress=progress, prices=prices)  # fmt: skip
    raise typer.Exit(code)


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model registry directory.")],
    data: Annotated[list[Path], typer.Option("--data", help="OHLCV file(s) to evaluate on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    name: Annotated[
        str | None, typer.Option(help="Model name in the registry (default: the only one).")
    ] = None,
    prices: Annotated[
        str | None,
        typer.Option(help="adjusted|raw: scale by the Adj Close column (default when present) or not."),
    ] = None,
    include_unseen_symbols_in_period: Annotated[
        bool,
        typer.Option(
            "--include-unseen-symbols-in-period",
            help="Also score in-period rows of symbols the model never trained on (share-class twins "
            "count as trained), reported separately with a warning.",
        ),
    ] = False,
    online: Annotated[
        bool, typer.Option("--online", help="Also replay the online recalibration prequentially.")
    ] = False,
) -> None:
    """Score only rows after the model's training cut; metrics beside the always-long and momentum baselines."""
    from tradesignals.models.commands import evaluate_command

    def err(message: str) -> None:
        if message.startswith("warning: "):
            console.print(f"[bold yellow]warning:[/] {message[9:]}", highlight=False, soft_wrap=True)
            return
        console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)

    code = evaluate_command(
        model_dir,
        data,
        as_json=as_json,
        name=name,
        include_unseen_symbols_in_period=include_unseen_symbols_in_period,
        online=online,
        echo=typer.echo,
        err=err,
        prices=prices,
    )
    raise typer.Exit(code)


ledger_app = typer.Typer(help="The hash-chained signal ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(
    remote: Annotated[
        str | None, typer.Option(help="Verify a running server from its public API: http://HOST:PORT.")
    ] = None,
    known: Annotated[
        Path | None, typer.Option(help="Checkpoints saved earlier (JSON lines): the ledger must extend them.")
    ] = None,
) -> None:
    """Re-walk the hash chain and check every signed checkpoint; name the first contradiction (exit 1)."""
    from tradesignals.ledger_cli import verify_command

    if remote is not None:
        raise typer.Exit(verify_command(remote=remote, known=known))
    try:
        settings = _settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(verify_command(settings, known=known))


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    save: Annotated[Path, typer.Option(help="File to append the latest checkpoint to (JSON lines).")],
    remote: Annotated[
        str | None, typer.Option(help="Take it from a running server: http://HOST:PORT.")
    ] = None,
) -> None:
    """Save the latest signed checkpoint, so that `ledger verify --known FILE` can check it later."""
    from tradesignals.ledger_cli import checkpoint_command

    if remote is not None:
        raise typer.Exit(checkpoint_command(save, remote=remote))
    try:
        settings = _settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(checkpoint_command(save, settings))


@ledger_app.command("rotate-key")
def ledger_rotate_key(
    new_key: Annotated[Path, typer.Option(help="The new key (PEM); created, mode 0600, when absent.")],
) -> None:
    """Switch the checkpoint key: a checkpoint signed by the current key names the new one. Stop the engine first."""
    from tradesignals.ledger_cli import rotate_command

    try:
        settings = _settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(rotate_command(new_key, settings))


@app.command()
def sentiment(
    text: Annotated[str | None, typer.Argument(help="A headline to score.")] = None,
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="CSV (gzip ok) with columns text,label to evaluate on.")
    ] = None,
    do_train: Annotated[
        bool, typer.Option("--train", help="(Re)train from the Twitter train split and save the model.")
    ] = False,
    data: Annotated[
        Path | None, typer.Option("--data", help="Shared data folder to train from (default TS_DATA_DIR).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model file (default TS_HOME/models/sentiment/).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print --eval/--train figures as one JSON line.")
    ] = False,
) -> None:
    """Headline sentiment: `sentiment "TEXT"` prints {"label", "score"}; --eval FILE measures; --train fits.

    Without a saved model, the first use trains one from TS_DATA_DIR (or --data) if the Twitter
    financial news set is there (about half a minute), else says how to get one (ADR 0013).
    """
    from tradesignals.news.sentiment import (
        MODEL_FILE,
        SentimentError,
        evaluate,
        find_training_file,
        load_or_train,
        read_labelled,
        train,
    )

    modes = sum([text is not None, eval_file is not None])
    if modes > 1 or (modes == 0 and not do_train):
        raise _fail("give exactly one of TEXT or --eval FILE (or --train alone)")
    try:
        settings = _settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    model_path = model or settings.home / "models" / "sentiment" / MODEL_FILE
    env_data = os.environ.get("TS_DATA_DIR")
    data_dir = data or (Path(env_data) if env_data else None)
    try:
        if do_train:
            source = find_training_file(data_dir)
            if source is None:
                raise SentimentError(
                    f"--train: no twitter_financial_news_sentiment/sent_train.csv.gz under {data_dir}"
                )
            trained = train(source)
            trained.save(model_path)
            summary = {
                "model": str(model_path),
                "n_train": trained.meta["n_train"],
                "train_sha256": trained.meta["train_sha256"],
            }
            typer.echo(
                json.dumps(summary)
                if as_json
                else f"saved {model_path} (trained on {trained.meta['n_train']} rows)"
            )
            if text is None and eval_file is None:
                return
        scorer, trained_now = load_or_train(model_path, data_dir)
        if trained_now:
            console.print(f"trained a sentiment model into {model_path}", highlight=False)
        if text is not None:
            if not text.strip():
                raise SentimentError("TEXT is empty")
            typer.echo(json.dumps(scorer.predict(text).as_dict()))
            return
        assert eval_file is not None
        texts, labels = read_labelled(eval_file)
        report = evaluate(lambda t: scorer.predict(t).label, texts, labels)
    except SentimentError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report))
    else:
        for key, value in report.items():
            typer.echo(f"{key:>16}  {value}")


def _last_json(text: str) -> object | None:
    """The script's JSON: the whole output if it is one document, else its last line."""
    for candidate in (text.strip(), (text.strip().splitlines() or [""])[-1]):
        try:
            return json.loads(candidate)  # type: ignore[no-any-return]
        except json.JSONDecodeError:
            continue
    return None


@app.command()
def backtest(
    data: Annotated[Path, typer.Option("--data", help="OHLCV file (CSV/Parquet) to replay.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write (must not hold files yet); default TS_HOME/backtests/<UTC time>-<data name>, "
            "where the API serves it.",
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model registry directory (as `train --out` writes).")
    ] = None,
    profile: Annotated[str, typer.Option(help="conservative | moderate | aggressive")] = "moderate",
    fees_bps: Annotated[
        float | None, typer.Option("--fees-bps", help="Commission per side, bp (replaces the default).")
    ] = None,
    slippage_bps: Annotated[
        float | None,
        typer.Option("--slippage-bps", help="Slippage + half spread per side, bp (replaces both)."),
    ] = None,
    cash: Annotated[float, typer.Option(help="Starting cash.")] = 100_000.0,
    from_: Annotated[str | None, typer.Option("--from", help="First date traded (YYYY-MM-DD).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last date read (YYYY-MM-DD).")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Also buy-and-hold this symbol.")] = None,
    allow_in_sample: Annotated[
        bool, typer.Option("--allow-in-sample", help="Run even inside the model's training range.")
    ] = False,
    max_open: Annotated[int, typer.Option(help="Most positions open at once.")] = 10,
    retrain_every: Annotated[
        str | None,
        typer.Option("--retrain-every", help="Walk-forward: a new model every period (3M, 1Y…)."),
    ] = None,
    train_window: Annotated[
        str | None,
        typer.Option(
            "--train-window",
            help="Walk-forward: each model learns from this much data before its period (3Y).",
        ),
    ] = None,
) -> None:
    """Replay a file through the live engine and follow its signals with a sized portfolio."""
    from tradesignals.backtest.outputs import OutputExists, write_outputs
    from tradesignals.backtest.run import BacktestError, BacktestSpec, run_backtest

    try:
        overrides: dict[str, object] = {}
        for asset in ("equity", "crypto"):
            if fees_bps is not None:
                overrides[f"costs_{asset}_commission_bp"] = fees_bps
            if slippage_bps is not None:
                overrides[f"costs_{asset}_slippage_bp"] = slippage_bps
                overrides[f"costs_{asset}_half_spread_bp"] = 0.0
        settings = _settings(**overrides)
        configure_logging("WARNING")
        spec = BacktestSpec(
            data=data,
            profile=profile,
            cash=cash,
            start_ns=_date_ns(from_, "--from"),
            end_ns=_date_ns(to, "--to", end_of_day=True),
            benchmark=benchmark,
            allow_in_sample=allow_in_sample,
            model_dir=model,
            max_open=max_open,
            retrain_every=retrain_every,
            train_window=train_window,
        )
        if out is None:
            out = settings.backtests_dir / _result_id(data)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise OutputExists(f"--out {out} already exists and is not an empty folder")
        with _bars_progress() as progress:
            result = run_backtest(
                settings, spec, progress=progress, note=lambda line: typer.echo(line, err=True)
            )
        write_outputs(result, out)
    except (ConfigError, BacktestError, OutputExists) as exc:
        raise _fail(str(exc)) from None
    s = result.summary
    if result.in_sample:
        typer.echo("IN-SAMPLE: the backtest window overlaps the model's training range")
    typer.echo(
        f"{s['trades']} trades, total return {s['total_return']:.2%}, max drawdown {s['max_drawdown']:.2%}, "
        f"sharpe {s['sharpe']}; wrote {out}"
    )


@contextmanager
def _bars_progress() -> Iterator[Callable[[int], None] | None]:
    """A transient count of bars replayed on a terminal's stderr (nothing when not a terminal)."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.completed:,} bars replayed"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("backtest", total=None)
        yield lambda n: bar.update(task, completed=n)


def _result_id(data: Path) -> str:
    """A result folder name the API accepts: the UTC time (newest sorts first) and the data's name."""
    import re
    from datetime import UTC, datetime

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", data.name.split(".")[0]).strip("-.") or "data"
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{stem[:60]}"


def _date_ns(value: str | None, option: str, *, end_of_day: bool = False) -> int | None:
    """A YYYY-MM-DD date (UTC) as ns; the end of that day for ``--to``; one line when unreadable."""
    if value is None:
        return None
    from datetime import UTC, datetime, timedelta

    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{option} {value!r}: expected a date as YYYY-MM-DD") from None
    if end_of_day:
        day += timedelta(days=1) - timedelta(microseconds=1)
    return int(day.timestamp()) * 10**9 + day.microsecond * 1000


def main() -> None:
    app()


if __name__ == "__main__":
    main()
