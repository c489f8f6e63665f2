"""Topic names: the bus contract between roles (ingest → engine → api)."""

MARKET_TICKS = "market.ticks"
MARKET_BARS = "market.bars"
SIGNALS = "signals"
SIGNAL_EVENTS = "signal.events"
SYSTEM_ALERTS = "system.alerts"
