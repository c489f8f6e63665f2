"""The engine: bars in, signals out — one code path for live, replay and backtests."""
