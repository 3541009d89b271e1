"""Dates and times in the customer's words, understood by ``dateparser`` in the tenant's time zone.

"Tuesday", "tomorrow at 2pm", "next Friday at 10am", "May 14", "2 PM", "14:30", "noon". A phrase may give a
day, a time, or both; :func:`parse_when` says which, so slot-filling can keep a day from one turn and a time
from the next. A bare weekday means the next such day after today ("book for Tuesday" said on a Tuesday means
next week); "today" means today.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dateparser
from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.translation import gettext as _

_TIME = re.compile(
    r"\b\d{1,2}(:\d{2})?\s*(a\.?m\.?|p\.?m\.?)(?=\W|$)|\b\d{1,2}:\d{2}\b|\b(noon|midday)\b"
    r"|(?<=\bat\s)\d{1,2}\b(?![:/.]\d|\s*(days?|weeks?|months?|hours?|hrs?|min\w*|people|of)\b)",
    re.IGNORECASE,
)
_MERIDIEM = re.compile(r"a\.?m\.?|p\.?m\.?|noon|midday", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")
_WEEKDAY = r"(mon|tues?|wed(nes)?|thu(rs?)?|fri|sat(ur)?|sun)(day)?"
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
_DATE = re.compile(
    rf"\b({_WEEKDAY}|today|tomorrow|tonight|day after tomorrow|next week|{_MONTH}\s+\d{{1,2}}(st|nd|rd|th)?"
    rf"|\d{{1,2}}(st|nd|rd|th)?\s+(of\s+)?{_MONTH}|\d{{1,2}}/\d{{1,2}}(/\d{{2,4}})?)\b",
    re.IGNORECASE,
)
_BARE_WEEKDAY = re.compile(rf"^\s*(on\s+|this\s+)?{_WEEKDAY}\s*$", re.IGNORECASE)
# Phone numbers, emails and URLs are not dates: remove them before searching.
_NOISE = re.compile(r"\S+@\S+|https?://\S+|\+?\d[\d\s().-]{6,}\d")


@dataclass(frozen=True)
class When:
    """What a text said about when: a local ``day`` and/or a local ``at`` (wall-clock time), each optional."""

    day: date | None = None
    at: time | None = None
    meridiem: bool = True  # False for "2:30" or "at 3": the hour may mean the afternoon (see :func:`fit_hours`)

    @property
    def empty(self) -> bool:
        return self.day is None and self.at is None


# Spanish days and times said the way patients write them, rewritten into the English the parser below reads
# ("el martes a las 3 de la tarde" → "el tuesday at 3 pm"); accents optional.
_ES_REWRITES = [
    (re.compile(r"\b(\d{1,2}(?::\d{2})?)\s*(?:de|por) la (?:tarde|noche)\b", re.I), r"\1 pm"),
    (re.compile(r"\b(\d{1,2}(?::\d{2})?)\s*(?:de|por) la ma[nñ]ana\b", re.I), r"\1 am"),
    (re.compile(r"\b(?:a las|a la)\s+(\d{1,2}(?::\d{2})?)", re.I), r"at \1"),
    (re.compile(r"\bmedio ?d[ií]a\b", re.I), "noon"),
    (re.compile(r"\bpasado ma[nñ]ana\b", re.I), "day after tomorrow"),
    (re.compile(r"\b(?<!la )(?<!por la )ma[nñ]ana\b", re.I), "tomorrow"),
    (re.compile(r"\bhoy\b", re.I), "today"),
    (re.compile(r"\blunes\b", re.I), "monday"),
    (re.compile(r"\bmartes\b", re.I), "tuesday"),
    (re.compile(r"\bmi[eé]rcoles\b", re.I), "wednesday"),
    (re.compile(r"\bjueves\b", re.I), "thursday"),
    (re.compile(r"\bviernes\b", re.I), "friday"),
    (re.compile(r"\bs[aá]bado\b", re.I), "saturday"),
    (re.compile(r"\bdomingo\b", re.I), "sunday"),
]


def _from_spanish(text: str) -> str:
    for pattern, replacement in _ES_REWRITES:
        text = pattern.sub(replacement, text)
    return text


def parse_when(text: str, *, tz: str, now: datetime) -> When:
    """Find a day and/or time in ``text``, interpreted in ``tz`` (IANA name) relative to ``now`` (aware).

    Returns ``When()`` when the text names no day or time. Past days are moved forward (dateparser's
    ``PREFER_DATES_FROM = "future"``).
    """
    cleaned = _from_spanish(_NOISE.sub(" ", text or ""))
    if not (_TIME.search(cleaned) or _DATE.search(cleaned)):
        return When()
    local_now = now.astimezone(zoneinfo.ZoneInfo(tz))
    settings = {
        "TIMEZONE": tz,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DAY_OF_MONTH": "first",
    }
    day: date | None = None
    at: time | None = None
    if match := _DATE.search(cleaned):
        phrase = match.group(0)
        value = dateparser.parse(phrase, languages=["en"], settings=settings)
        if value is not None:
            day = value.date()
            if _BARE_WEEKDAY.match(phrase) and day <= local_now.date():
                day = day + timedelta(days=7 * ((local_now.date() - day).days // 7 + 1))
    meridiem = True
    if match := _TIME.search(cleaned):
        phrase = match.group(0).strip()
        clock = _CLOCK.match(phrase)
        if clock and not _MERIDIEM.search(phrase):
            hour, minute = int(clock.group(1)), int(clock.group(2) or 0)
            if hour < 24 and minute < 60:
                at = time(hour, minute)
                meridiem = hour == 0 or hour >= 12 or phrase.startswith("0")
        else:
            value = dateparser.parse(phrase.replace(".", ""), languages=["en"], settings=settings)
            if value is not None:
                at = value.time().replace(second=0, microsecond=0, tzinfo=None)
    return When(day=day, at=at, meridiem=meridiem)


def fit_hours(at: time, *, meridiem: bool, windows: list[tuple[time, time]]) -> time:
    """A time said without am/pm ("2:30", "at 3") as a receptionist hears it: the afternoon reading when only
    it falls inside the bookable ``windows`` (local ``[start, end)`` wall-clock pairs) — "2:30" is 14:30 at a
    clinic open 9 to 5, while "9" stays 9 AM. Explicit times (``meridiem``) are returned unchanged."""
    if meridiem or not 1 <= at.hour <= 11:
        return at
    later = at.replace(hour=at.hour + 12)

    def inside(value: time) -> bool:
        return any(start <= value < end for start, end in windows)

    return later if inside(later) and not inside(at) else at


def local_datetime(day: date, at: time, tz: str) -> datetime:
    """The aware datetime of wall-clock ``at`` on ``day`` in ``tz``."""
    return datetime.combine(day, at, zoneinfo.ZoneInfo(tz))


def say_day(day: date) -> str:
    """``Tuesday, November 24`` (in Spanish ``martes 24 de noviembre``: the active translation's words and order,
    from Django's own catalog of weekday and month names)."""
    return _("{weekday}, {month} {day}").format(
        weekday=str(WEEKDAYS[day.weekday()]), month=str(MONTHS[day.month]), day=day.day
    )


def say_time(value: datetime | time) -> str:
    """``2:00 PM``."""
    return f"{value.hour % 12 or 12}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"


def say_when(value: datetime) -> str:
    """``Tuesday, November 24 at 2:00 PM`` (``value`` already in the tenant's time zone)."""
    return _("{day} at {time}").format(day=say_day(value.date()), time=say_time(value))
