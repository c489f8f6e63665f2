"""Market data: feeds, validation, bar aggregation, calendars."""
