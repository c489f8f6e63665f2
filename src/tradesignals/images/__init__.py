"""Static signal images: a candlestick chart of one signal's plan, rendered once off the hot path."""
