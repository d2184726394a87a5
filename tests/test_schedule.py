"""Quartz CronSchedule → croniter: the Quartz documentation's examples and their fire times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import override_settings

from jobs.schedule.quartz import QuartzSchedule, next_fire_time, to_croniter, validate_cron

START = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # a Thursday


def fires(expression: str, start: datetime = START) -> list[str]:
    schedule = QuartzSchedule.parse(expression, UTC)
    return [moment.strftime("%a %Y-%m-%d %H:%M:%S") for moment in schedule.next_times(start, 5)]


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        # "Fire at 10:15am every Monday, Tuesday, Wednesday, Thursday and Friday"
        (
            "0 15 10 ? * MON-FRI",
            START,
            [
                "Thu 2026-01-01 10:15:00",
                "Fri 2026-01-02 10:15:00",
                "Mon 2026-01-05 10:15:00",
                "Tue 2026-01-06 10:15:00",
                "Wed 2026-01-07 10:15:00",
            ],
        ),
        # "Fire at 12pm (noon) on the first Monday of every month" (2 = Monday in Quartz)
        (
            "0 0 12 ? * 2#1",
            START,
            [
                "Mon 2026-01-05 12:00:00",
                "Mon 2026-02-02 12:00:00",
                "Mon 2026-03-02 12:00:00",
                "Mon 2026-04-06 12:00:00",
                "Mon 2026-05-04 12:00:00",
            ],
        ),
        # "Fire at 10:15am on the last day of every month"
        (
            "0 15 10 L * ?",
            START,
            [
                "Sat 2026-01-31 10:15:00",
                "Sat 2026-02-28 10:15:00",
                "Tue 2026-03-31 10:15:00",
                "Thu 2026-04-30 10:15:00",
                "Sun 2026-05-31 10:15:00",
            ],
        ),
        # "Fire every 5 minutes starting at 2pm and ending at 2:55pm, AND fire every 5 minutes
        # starting at 6pm and ending at 6:55pm, every day"
        (
            "0 0/5 14,18 * * ?",
            datetime(2026, 1, 1, 14, 50, tzinfo=UTC),
            [
                "Thu 2026-01-01 14:55:00",
                "Thu 2026-01-01 18:00:00",
                "Thu 2026-01-01 18:05:00",
                "Thu 2026-01-01 18:10:00",
                "Thu 2026-01-01 18:15:00",
            ],
        ),
        # "Fire at 12pm (noon) every day during the year 2030" (adapted from 2005)
        (
            "0 0 12 * * ? 2030",
            START,
            [
                "Tue 2030-01-01 12:00:00",
                "Wed 2030-01-02 12:00:00",
                "Thu 2030-01-03 12:00:00",
                "Fri 2030-01-04 12:00:00",
                "Sat 2030-01-05 12:00:00",
            ],
        ),
        # "Fire at 10:15am on the last Friday of every month"
        (
            "0 15 10 ? * 6L",
            START,
            [
                "Fri 2026-01-30 10:15:00",
                "Fri 2026-02-27 10:15:00",
                "Fri 2026-03-27 10:15:00",
                "Fri 2026-04-24 10:15:00",
                "Fri 2026-05-29 10:15:00",
            ],
        ),
        # "Fire at 10:15am on the last Friday of every month during 2027 and 2028" (from 2002-2005)
        (
            "0 15 10 ? * 6L 2027-2028",
            START,
            [
                "Fri 2027-01-29 10:15:00",
                "Fri 2027-02-26 10:15:00",
                "Fri 2027-03-26 10:15:00",
                "Fri 2027-04-30 10:15:00",
                "Fri 2027-05-28 10:15:00",
            ],
        ),
        # "Fire at 10:15am on the third Friday of every month"
        (
            "0 15 10 ? * 6#3",
            START,
            [
                "Fri 2026-01-16 10:15:00",
                "Fri 2026-02-20 10:15:00",
                "Fri 2026-03-20 10:15:00",
                "Fri 2026-04-17 10:15:00",
                "Fri 2026-05-15 10:15:00",
            ],
        ),
        # "Fire at 12pm (noon) every 5 days every month, starting on the first day of the month"
        (
            "0 0 12 1/5 * ?",
            START,
            [
                "Thu 2026-01-01 12:00:00",
                "Tue 2026-01-06 12:00:00",
                "Sun 2026-01-11 12:00:00",
                "Fri 2026-01-16 12:00:00",
                "Wed 2026-01-21 12:00:00",
            ],
        ),
        # "Fire every November 11th at 11:11am"
        (
            "0 11 11 11 11 ?",
            START,
            [
                "Wed 2026-11-11 11:11:00",
                "Thu 2027-11-11 11:11:00",
                "Sat 2028-11-11 11:11:00",
                "Sun 2029-11-11 11:11:00",
                "Mon 2030-11-11 11:11:00",
            ],
        ),
        # "Fire at 2:10pm and at 2:44pm every Wednesday in the month of March"
        (
            "0 10,44 14 ? 3 WED",
            START,
            [
                "Wed 2026-03-04 14:10:00",
                "Wed 2026-03-04 14:44:00",
                "Wed 2026-03-11 14:10:00",
                "Wed 2026-03-11 14:44:00",
                "Wed 2026-03-18 14:10:00",
            ],
        ),
        # "Fire every minute starting at 2pm and ending at 2:05pm, every day"
        (
            "0 0-5 14 * * ?",
            START,
            [
                "Thu 2026-01-01 14:00:00",
                "Thu 2026-01-01 14:01:00",
                "Thu 2026-01-01 14:02:00",
                "Thu 2026-01-01 14:03:00",
                "Thu 2026-01-01 14:04:00",
            ],
        ),
        # Nearest weekday to the 15th: 15 Feb and 15 Mar 2026 are Sundays, so Monday the 16th.
        (
            "0 0 12 15W * ?",
            START,
            [
                "Thu 2026-01-15 12:00:00",
                "Mon 2026-02-16 12:00:00",
                "Mon 2026-03-16 12:00:00",
                "Wed 2026-04-15 12:00:00",
                "Fri 2026-05-15 12:00:00",
            ],
        ),
        # Numbered days of the week: 1 = Sunday, 7 = Saturday.
        (
            "0 0 8 ? * 1,7",
            START,
            [
                "Sat 2026-01-03 08:00:00",
                "Sun 2026-01-04 08:00:00",
                "Sat 2026-01-10 08:00:00",
                "Sun 2026-01-11 08:00:00",
                "Sat 2026-01-17 08:00:00",
            ],
        ),
        # DataZen's own sample: every five minutes.
        (
            "0 */5 * ? * *",
            START,
            [
                "Thu 2026-01-01 00:05:00",
                "Thu 2026-01-01 00:10:00",
                "Thu 2026-01-01 00:15:00",
                "Thu 2026-01-01 00:20:00",
                "Thu 2026-01-01 00:25:00",
            ],
        ),
    ],
)
def test_quartz_examples_fire_when_quartz_says(
    expression: str, start: datetime, expected: list[str]
) -> None:
    assert fires(expression, start) == expected


def test_day_of_week_numbers_are_shifted_to_croniter() -> None:
    assert to_croniter("0 0 12 ? * 2-6") == "0 0 12 * * 1-5"
    assert to_croniter("0 15 10 ? * 6L") == "0 15 10 * * L5"
    assert to_croniter("0 0 12 ? * 2#1") == "0 0 12 * * 1#1"


@override_settings(TIME_ZONE="America/New_York")
def test_schedule_is_read_in_the_configured_time_zone() -> None:
    # 09:00 in New York in January is 14:00 UTC.
    assert next_fire_time("0 0 9 * * ?", START) == datetime(2026, 1, 1, 14, 0, tzinfo=UTC)


def test_blank_schedule_is_manual_only() -> None:
    validate_cron("")
    validate_cron("   ")
    assert next_fire_time("", START) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * *", "6 or 7 fields"),
        ("0 0 12 LW * ?", "cannot be evaluated by croniter"),
        ("0 0 12 L-3 * ?", "cannot be evaluated by croniter"),
        ("0 0 12 1 * MON", "both a day-of-month and a day-of-week"),
        ("0 0 12 ? * ?", "only one of"),
        ("0 0 12 ? * 0", "1-7 (1 = Sunday)"),
        ("0 0 12 ? * 8", "1-7 (1 = Sunday)"),
        ("0 0 12 ? * FUN", "unknown day-of-week name"),
        ("0 0 12 * * ? 2020", "never fires"),
        ("0 0 0 30 2 ?", "never fires"),
        ("0 0 25 * * ?", "croniter cannot evaluate it"),
        ("every day", "6 or 7 fields"),
    ],
)
def test_expressions_croniter_cannot_run_are_refused_clearly(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match="Invalid CronSchedule") as caught:
        validate_cron(expression)
    assert message in str(caught.value)
