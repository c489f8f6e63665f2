"""Backtests: the live engine replayed over history, a follower's portfolio on its signals, and the figures."""
