"""The demo's training child: the one function a spawned process runs to train the first model.

Kept apart from ``demo_model`` so that the parent can name it without importing anything heavy
(the parent's event loop must not stall for the seconds pandas, LightGBM and XGBoost take to
import), and outside ``wiring`` so that the child imports the models and the simulator only, not
the whole application. See ``wiring.engine_builder.train_demo_models_apart``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tradesignals.config import Settings
    from tradesignals.domain.market import Timeframe


def train_in_child(settings: Settings, jobs: tuple[tuple[Timeframe, str], ...], report: Connection) -> None:
    """Log as the parent does, train each (timeframe, name) that has no model yet, and send back
    ``None`` or one line saying why not (never a traceback)."""
    from tradesignals.logging_setup import configure_logging

    configure_logging(settings.log_level)
    try:
        from tradesignals.demo_model import ensure_demo_model

        for timeframe, name in jobs:
            ensure_demo_model(settings, timeframe, name)
    except Exception as exc:  # one line for the parent's log
        report.send(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300])
    else:
        report.send(None)
    finally:
        report.close()
