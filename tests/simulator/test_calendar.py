import datetime as dt

import numpy as np

from simulator.calendar import Calendar, french_public_holidays


def test_public_holidays_2025_and_2026():
    holidays_2025 = french_public_holidays(2025)
    assert len(holidays_2025) == 11
    # Easter 2025 is 20 April: Easter Monday, Ascension and Whit Monday follow from it
    assert {dt.date(2025, 4, 21), dt.date(2025, 5, 29), dt.date(2025, 6, 9)} <= holidays_2025
    assert dt.date(2026, 4, 6) in french_public_holidays(2026)  # Easter 2026 is 5 April


def test_weekdays_months_and_holidays_per_day():
    calendar = Calendar(dt.date(2025, 12, 22), dt.date(2026, 1, 4))
    assert calendar.days == 14 and calendar.minutes == 14 * 1440
    assert calendar.weekday[0] == 0  # 22 December 2025 is a Monday
    assert calendar.month_labels[-1] == "2026-01"
    assert calendar.holiday[calendar.day_index(dt.date(2025, 12, 25))]
    assert calendar.holiday[calendar.day_index(dt.date(2026, 1, 1))]
    assert calendar.christmas_week.sum() == 9  # 24..31 December and 1 January
    assert calendar.moment(1440 + 61) == dt.datetime(2025, 12, 23, 1, 1)
    assert calendar.minute_index(dt.datetime(2025, 12, 23, 1, 1)) == 1501
    np.testing.assert_allclose(calendar.years_since(dt.date(2025, 12, 22))[0], 0.0)
