"""News, catalysts and the earnings calendar."""
