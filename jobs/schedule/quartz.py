"""DataZen `CronSchedule`: Quartz cron expressions, translated once to croniter and evaluated.

Quartz puts seconds first, writes `?` in the unused day field, numbers days of the week 1-7
from Sunday and spells "last Friday" `6L`; croniter numbers them 0-6 and spells it `L5`.
`to_croniter` is the one place that bridges the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterError

DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
FIELD_NAMES = ("seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year")

_PLAIN = re.compile(r"^[0-9*/,\-]+$")
_MONTH = re.compile(r"^[0-9A-Z*/,\-]+$")
_DOW_ITEM = re.compile(
    r"^(?:(?P<star>\*)(?:/(?P<star_step>\d+))?"
    r"|(?P<start>\d+|[A-Z]{3})(?:-(?P<end>\d+|[A-Z]{3}))?(?:/(?P<step>\d+))?"
    r"|(?P<nth_day>\d+|[A-Z]{3})#(?P<nth>\d+)"
    r"|(?P<last_day>\d+|[A-Z]{3})?L)$"
)


def is_blank(expression: str | None) -> bool:
    """A blank CronSchedule means the job runs by hand or by a trigger only."""
    return expression is None or not expression.strip()


def _dow_number(token: str) -> int:
    """Quartz day-of-week token (1-7 from Sunday, or a name) → croniter number (0-6)."""
    if token.isdigit():
        value = int(token)
        if not 1 <= value <= 7:
            raise ValueError(f"day-of-week {value} is out of range: Quartz uses 1-7 (1 = Sunday)")
        return value - 1
    if token not in DAY_NAMES:
        raise ValueError(f"unknown day-of-week name '{token}' (use SUN, MON, … SAT)")
    return DAY_NAMES.index(token)


def _translate_dow_item(item: str) -> str:
    match = _DOW_ITEM.match(item)
    if match is None:
        raise ValueError(f"day-of-week item '{item}' is not valid Quartz syntax")
    parts = match.groupdict()
    if parts["star"]:
        # `*/n` counts from Sunday in both dialects, so it means the same days.
        return f"*/{parts['star_step']}" if parts["star_step"] else "*"
    if parts["nth_day"] is not None:
        nth = int(parts["nth"])
        if not 1 <= nth <= 5:
            raise ValueError(f"'{item}': the n in day#n must be 1-5")
        return f"{_dow_number(parts['nth_day'])}#{nth}"
    if item.endswith("L"):
        if parts["last_day"] is None:
            # A bare L in day-of-week is Quartz's 7: Saturday.
            return "6"
        return f"L{_dow_number(parts['last_day'])}"
    start = _dow_number(parts["start"])
    step = parts["step"]
    if parts["end"] is not None:
        end = _dow_number(parts["end"])
        if end < start:
            raise ValueError(f"day-of-week range '{item}' runs backwards")
        text = f"{start}-{end}"
    elif step is not None:
        # Quartz `2/3` is "from Monday every 3 days"; croniter needs the range written out.
        text = f"{start}-6"
    else:
        return str(start)
    return f"{text}/{step}" if step is not None else text


def _translate_dom(field: str) -> str:
    if field in ("?", "*"):
        return "*"
    if field == "LW" or field.startswith("L-"):
        raise ValueError(
            f"day-of-month '{field}' (last weekday / offset from the last day) cannot be "
            "evaluated by croniter; use L or a nW day instead"
        )
    if "W" in field and not re.fullmatch(r"\d{1,2}W", field):
        raise ValueError(f"day-of-month '{field}': W takes a single day, as in 15W")
    if not re.fullmatch(r"[0-9*/,\-LW]+", field):
        raise ValueError(f"day-of-month '{field}' is not valid Quartz syntax")
    return field


def to_croniter(expression: str) -> str:
    """Translate a Quartz expression into the croniter expression (seconds first) it means.

    Raises ValueError, naming the field, for anything Quartz would refuse or croniter cannot
    evaluate.
    """
    fields = expression.strip().upper().split()
    if len(fields) not in (6, 7):
        raise ValueError(
            f"a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month "
            f"month day-of-week [year]); '{expression.strip()}' has {len(fields)}"
        )
    seconds, minutes, hours, dom, month, dow = fields[:6]
    year = fields[6] if len(fields) == 7 else None
    for name, value in (("seconds", seconds), ("minutes", minutes), ("hours", hours)):
        if not _PLAIN.match(value):
            raise ValueError(f"{name} field '{value}' is not valid Quartz syntax")
    if not _MONTH.match(month):
        raise ValueError(f"month field '{month}' is not valid Quartz syntax")
    if year is not None and not _PLAIN.match(year):
        raise ValueError(f"year field '{year}' is not valid Quartz syntax")
    if dom not in ("?", "*") and dow not in ("?", "*"):
        raise ValueError(
            "Quartz does not support both a day-of-month and a day-of-week: write ? in one of them"
        )
    if dom == "?" and dow == "?":
        raise ValueError("only one of day-of-month and day-of-week may be ?")
    dow_text = (
        "*" if dow in ("?", "*") else ",".join(_translate_dow_item(i) for i in dow.split(","))
    )
    parts = [seconds, minutes, hours, _translate_dom(dom), month, dow_text]
    if year is not None:
        parts.append(year)
    return " ".join(parts)


def time_zone() -> tzinfo:
    """The zone schedules are read in: settings.TIME_ZONE (GATEWAY_TIME_ZONE), UTC by default."""
    from django.conf import settings

    name = getattr(settings, "TIME_ZONE", None) or "UTC"
    return ZoneInfo(name)


@dataclass(frozen=True)
class QuartzSchedule:
    """A Quartz expression that can say when it fires next, in UTC."""

    expression: str
    croniter_expression: str
    zone: tzinfo

    @classmethod
    def parse(cls, expression: str, zone: tzinfo | None = None) -> QuartzSchedule:
        translated = to_croniter(expression)
        schedule = cls(expression.strip(), translated, zone or time_zone())
        try:
            croniter(translated, second_at_beginning=True)
        except CroniterError as exc:
            raise ValueError(f"croniter cannot evaluate it ({exc})") from exc
        return schedule

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (an aware datetime), in UTC."""
        local = moment.astimezone(self.zone)
        try:
            found = croniter(self.croniter_expression, local, second_at_beginning=True).get_next(
                datetime
            )
        except CroniterError as exc:
            raise ValueError(
                f"it never fires after {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            ) from exc
        return found.astimezone(UTC)

    def next_times(self, moment: datetime, count: int) -> list[datetime]:
        times: list[datetime] = []
        for _ in range(count):
            moment = self.next_after(moment)
            times.append(moment)
        return times

    def fires_at(self, moment: datetime) -> bool:
        """Whether `moment` is one of this schedule's fire times (to the second)."""
        moment = moment.replace(microsecond=0)
        try:
            return self.next_after(moment - timedelta(seconds=1)) == moment
        except ValueError:
            return False


def validate_cron(expression: str | None) -> None:
    """Refuse, with a ValueError saying why, a CronSchedule the scheduler could not run.

    Blank is valid (manual or trigger only). An expression that never fires again (a year in
    the past, 30 February) is refused too. The message names the expression and the reason.
    """
    if is_blank(expression):
        return
    assert expression is not None
    try:
        QuartzSchedule.parse(expression).next_after(datetime.now(UTC))
    except ValueError as exc:
        raise ValueError(f"Invalid CronSchedule '{expression.strip()}': {exc}") from None


def next_fire_time(expression: str | None, after: datetime) -> datetime | None:
    """When a job with this CronSchedule is due next after `after`; None when it is blank."""
    if is_blank(expression):
        return None
    assert expression is not None
    return QuartzSchedule.parse(expression).next_after(after)
