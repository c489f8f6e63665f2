"""One logging setup for every process of ours: the CLI's and the children it spawns.

structlog lines on stderr (``sys.stderr`` looked up at each call), ISO UTC timestamps, no colours;
the chattiest libraries capped at WARNING unless the level asks for less.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Configure the standard library's logging and structlog at ``level`` (e.g. ``"INFO"``)."""
    import structlog

    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    for noisy in ("alembic", "sqlalchemy", "uvicorn.error", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr looked up at each call, not bound now: a caller that swaps it for a while (a
        # test runner, an embedding program) must not leave logging writing to a closed stream.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
