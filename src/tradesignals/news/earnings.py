"""Earnings calendar: when each symbol next reports, so signals expire before the report.

A signal that is not an earnings play must not live through an earnings release: the gap it can
cause is a different bet from the one the model scored. The calendar is a plain file for now
(``symbol,date[,time]`` with time ``bmo`` before the open or ``amc`` after the close); a feed
adapter can fill the same structure later.
"""

from __future__ import annotations

import bisect
import csv
from collections import defaultdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from tradesignals.domain.market import to_ns

NEW_YORK = ZoneInfo("America/New_York")
# When a release counts as "known to the market": before the open for bmo, after the close for
# amc, and, when the time is not given, the start of the day (conservative: expire earlier).
_RELEASE_TIME = {"bmo": time(8, 0), "amc": time(16, 5), "": time(0, 0)}


class EarningsCalendarError(ValueError):
    """A calendar file that cannot be read; one line naming the file and row."""


class EarningsCalendar:
    def __init__(self, releases: dict[str, list[int]] | None = None) -> None:
        self._releases = {s.upper(): sorted(v) for s, v in (releases or {}).items()}

    @classmethod
    def from_csv(cls, path: str | Path) -> EarningsCalendar:
        p = Path(path)
        releases: dict[str, list[int]] = defaultdict(list)
        try:
            with p.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = {f.strip().lower() for f in reader.fieldnames or []}
                if not {"symbol", "date"} <= fields:
                    raise EarningsCalendarError(f"{p}: needs columns symbol,date (found {sorted(fields)})")
                for line, row in enumerate(reader, start=2):
                    row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                    try:
                        day = date.fromisoformat(row["date"])
                    except ValueError:
                        raise EarningsCalendarError(f"{p}:{line}: bad date {row['date']!r}") from None
                    when = row.get("time", "").lower()
                    if when not in _RELEASE_TIME:
                        raise EarningsCalendarError(
                            f"{p}:{line}: time must be bmo, amc or empty, got {when!r}"
                        )
                    local = datetime.combine(day, _RELEASE_TIME[when], tzinfo=NEW_YORK)
                    releases[row["symbol"].upper()].append(to_ns(local.astimezone(UTC)))
        except OSError as exc:
            raise EarningsCalendarError(f"{p}: {exc.strerror or exc}") from None
        return cls(releases)

    def next_release(self, symbol: str, after_ns: int) -> int | None:
        """The first release strictly after ``after_ns`` (ns), or None when none is known."""
        times = self._releases.get(symbol.upper())
        if not times:
            return None
        i = bisect.bisect_right(times, after_ns)
        return times[i] if i < len(times) else None

    def count(self, symbol: str) -> int:
        """How many releases of ``symbol`` the calendar knows."""
        return len(self._releases.get(symbol.upper(), ()))

    def __len__(self) -> int:
        return sum(len(v) for v in self._releases.values())
