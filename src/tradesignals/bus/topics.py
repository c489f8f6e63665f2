"""Topic names: the bus contract between roles (ingest → engine → api)."""

MARKET_TICKS = "market.ticks"
MARKET_BARS = "market.bars"
SIGNALS = "signals"
SIGNAL_EVENTS = "signal.events"
SYSTEM_ALERTS = "system.alerts"
SIGNAL_LIVE = "signal.live"
"""One ``domain.live.LiveUpdate`` per open signal per bar (engine → api, ``signal:{id}:live``)."""
SIGNAL_RESEARCH = "signal.research"
"""One ``domain.research.SignalText`` per explanation or research brief written by the explain
sidecar (explain → api, relayed to ``signal:{id}:live``; keyed by signal id)."""
