"""Feed adapters; each normalises its source to domain Ticks and Bars with UTC nanosecond times."""
