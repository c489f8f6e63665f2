from pathlib import Path

import pytest

from tradesignals.domain.market import to_datetime
from tradesignals.news.earnings import EarningsCalendar, EarningsCalendarError


def test_release_times_follow_bmo_amc_in_new_york(tmp_path: Path) -> None:
    f = tmp_path / "earnings.csv"
    f.write_text("symbol,date,time\naapl,2024-02-01,amc\nAAPL,2024-05-02,bmo\nMSFT,2024-01-30,\n")
    cal = EarningsCalendar.from_csv(f)
    assert len(cal) == 3
    first = cal.next_release("AAPL", 0)
    assert first is not None and to_datetime(first).isoformat() == "2024-02-01T21:05:00+00:00"
    second = cal.next_release("AAPL", first)
    assert second is not None and to_datetime(second).isoformat() == "2024-05-02T12:00:00+00:00"
    assert cal.next_release("AAPL", second) is None
    assert cal.next_release("ZZZ", 0) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ticker,when\nA,2024-01-01\n", "needs columns symbol,date"),
        ("symbol,date\nA,01/02/2024\n", "earnings.csv:2: bad date '01/02/2024'"),
        ("symbol,date,time\nA,2024-01-02,noon\n", "time must be bmo, amc or empty"),
    ],
)
def test_bad_files_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "earnings.csv"
    f.write_text(text)
    with pytest.raises(EarningsCalendarError, match=message.replace("(", r"\(")):
        EarningsCalendar.from_csv(f)
