"""tradesignals: market data in, calibrated signals out, every outcome on a verifiable ledger."""

__version__ = "0.1.0"
