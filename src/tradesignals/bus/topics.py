"""Topic names: the bus contract between roles (ingest → engine → api)."""

MARKET_TICKS = "market.ticks"
MARKET_BARS = "market.bars"
SIGNALS = "signals"
SIGNAL_EVENTS = "signal.events"
SYSTEM_ALERTS = "system.alerts"
SIGNAL_LIVE = "signal.live"
"""One ``domain.live.LiveUpdate`` per open signal per bar (engine → api, ``signal:{id}:live``)."""
