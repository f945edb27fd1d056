"""When scheduled reports are due: slots of a cron expression in a timezone, and the timer that checks.

A report's ``schedule`` is a 5-field cron expression read in the report's ``timezone``. Its *slots* are
the instants it names; a run belongs to one slot and is named after it (``NAME@2026-11-23T06:00Z``), so
a slot must be the same instant whenever and wherever it is computed. Every datetime returned here is
timezone-aware UTC.

croniter does the cron matching, over naive local wall-clock times; this module maps each matching wall
time to one instant itself, because croniter's own handling of daylight saving time (checked with
croniter 7.0 on Europe/Paris 2026) breaks the rule that a wall time named once runs once:

* spring forward (02:00 -> 03:00): croniter moves ``30 2 * * *`` to 03:00, the end of the gap, not to
  03:30, and ``*/30 2 * * *`` loses its 02:30 run (both collapse onto 03:00);
* fall back (03:00 -> 02:00): croniter runs ``30 2 * * *`` twice, at 02:30 summer and winter time.

Here, as with cronie and systemd, a wall time that does not exist is moved forward by the length of the
gap (02:30 runs at 03:30) and a wall time that happens twice runs once, at its first occurrence. Slots
that land on the same instant (02:00 moved to 03:00 next to a real 03:00) are one slot.

The check itself runs from cron or a systemd timer (:func:`crontab_line`, :func:`systemd_units`) every
few minutes: ``research report due`` works out which slots are due, so a missed tick or a machine that was
off only delays a report, it never loses one.
"""

from __future__ import annotations

import re
import shlex
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

_UTC = timezone.utc
_DAY = timedelta(days=1)
_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\-]+$")


def check_cron(expr: str) -> str:
    """``expr`` with its whitespace normalized, if it is a 5-field cron expression that ever fires.

    The ``@daily`` family of nicknames is accepted too (they stand for 5-field expressions); croniter's
    6- and 7-field forms (seconds, years) are not, since crontab and the rest of this project have 5.
    """
    if not isinstance(expr, str):
        raise ValueError("a cron expression must be a string")
    text = " ".join(expr.split())
    fields = text.split(" ") if text else []
    if not (len(fields) == 1 and text.lower() in _ALIASES) and len(fields) != 5:
        raise ValueError(f"{expr!r} has {len(fields)} field(s); cron takes 5: minute hour day month weekday")
    try:
        # A start date makes croniter look for a match: '0 0 31 2 *' parses but never fires.
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError as exc:
        reason = re.sub(r"^\[.*?\]\s*", "", str(exc)) or "not a cron expression"
        if "find next date" in reason:
            reason = "never fires"
        raise ValueError(f"{text!r}: {reason}") from None
    return text


def check_timezone(tz: str) -> ZoneInfo:
    """The zone named ``tz`` (``Europe/Paris``, ``UTC``); ``ValueError`` if there is none."""
    return _zone(tz)


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {tz!r}") from None


@lru_cache(maxsize=256)
def _cron(expr: str) -> str:
    return check_cron(expr)


def _aware_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(_UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock time of ``instant``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a matching wall time runs at. ``fold=0`` is exactly the rule wanted: zoneinfo reads a
    skipped wall time with the offset from before the gap (so it lands gap-length later) and a repeated one
    as its first occurrence."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def _gap_before(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far clocks jumped forward in the day before ``instant`` (0 if they did not). A skipped wall time
    runs up to this much later than its neighbours, so the slot order and the wall-time order differ by
    at most this much. Assumes at most one transition a day, true of every zone in use."""
    return max(timedelta(0), _offset(zone, instant) - _offset(zone, instant - _DAY))


def _fold_before(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far clocks went back in the day before ``instant``: the wall times of the repeated hour ahead of
    ``instant``'s own wall time already ran, at their first occurrence."""
    return max(timedelta(0), _offset(zone, instant - _DAY) - _offset(zone, instant))


def next_slot(expr: str, tz: str, after: datetime) -> datetime:
    """The first slot strictly after ``after``."""
    expr, zone, after = _cron(expr), _zone(tz), _aware_utc(after, "after")
    # A wall time in a gap just behind us may still be ahead as an instant: start that far back.
    it = croniter(expr, _wall(after, zone) - _gap_before(zone, after))
    best: datetime | None = None
    horizon: datetime | None = None
    while True:
        wall = it.get_next(datetime)
        if horizon is not None and wall > horizon:
            return best  # type: ignore[return-value]
        slot = _instant(wall, zone)
        if slot > after and (best is None or slot < best):
            best = slot
            # Only a later wall time within one gap of this one can be an earlier instant.
            horizon = wall + _gap_before(zone, slot)


def latest_slot(expr: str, tz: str, now: datetime) -> datetime:
    """The most recent slot at or before ``now``."""
    expr, zone, now = _cron(expr), _zone(tz), _aware_utc(now, "now")
    # Just after clocks went back, wall times ahead of ours ran in the first pass: start that far ahead
    # (and a minute more, as get_prev never returns its start).
    it = croniter(expr, _wall(now, zone) + _fold_before(zone, now) + timedelta(minutes=1))
    best: datetime | None = None
    horizon: datetime | None = None
    while True:
        wall = it.get_prev(datetime)
        if horizon is not None and wall < horizon:
            return best  # type: ignore[return-value]
        slot = _instant(wall, zone)
        if slot <= now and (best is None or slot > best):
            best = slot
            # Only an earlier wall time within one gap of this one, moved forward, can be a later instant.
            horizon = wall - _gap_before(zone, slot)


def slots_between(expr: str, tz: str, start: datetime, end: datetime, limit: int = 1000) -> list[datetime]:
    """The slots with ``start < slot <= end``, oldest first; at most ``limit`` of them (the oldest)."""
    start, end = _aware_utc(start, "start"), _aware_utc(end, "end")
    if limit < 0:
        raise ValueError("limit must be >= 0")
    slots: list[datetime] = []
    cursor = start
    while len(slots) < limit:
        cursor = next_slot(expr, tz, cursor)
        if cursor > end:
            break
        slots.append(cursor)
    return slots


def slot_label(slot: datetime) -> str:
    """``2026-11-23T06:00Z``: the slot in UTC to the minute, as run ids spell it."""
    return _aware_utc(slot, "slot").strftime("%Y-%m-%dT%H:%MZ")


def slot_stem(expr: str, tz: str, slot: datetime) -> str:
    """The file name stem of a slot's report: its local date, or date and time when the schedule has more
    than one slot that local day (an hourly report must not overwrite itself)."""
    zone, slot = _zone(tz), _aware_utc(slot, "slot")
    local = slot.astimezone(zone)
    # The slots of one local day are consecutive, so a second one, if any, is a neighbour.
    neighbours = (latest_slot(expr, tz, slot - timedelta(microseconds=1)), next_slot(expr, tz, slot))
    if any(n.astimezone(zone).date() == local.date() for n in neighbours):
        return local.strftime("%Y-%m-%dT%H%M")
    return local.strftime("%Y-%m-%d")


def parse_at(text: str, tz: str) -> datetime:
    """A user's ``--at``: ``2026-11-23T06:00Z`` or with an offset, a naive date-time read in ``tz``, or a
    date, which means the end of that day in ``tz`` (its last second), so the day's last slot is picked."""
    zone = _zone(tz)
    raw = text.strip() if isinstance(text, str) else ""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{text!r} is not a date") from None
        # The next local midnight, less a second: right even on a day that is 23 or 25 hours long.
        return _instant(datetime.combine(day + _DAY, time()), zone) - timedelta(seconds=1)
    try:
        value = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        value = None
    if value is None or "T" not in raw.upper() and " " not in raw:
        raise ValueError(f"{text!r} is not a date or date-time; give 2026-11-23, 2026-11-23T06:00 or 2026-11-23T06:00Z")
    if value.tzinfo is None:
        return _instant(value, zone)
    return value.astimezone(_UTC)


def crontab_line(command: str, every_minutes: int = 5, *, workdir: str | None = None,
                 log: str | None = None) -> str:
    """A crontab line running ``command`` every ``every_minutes`` minutes, from ``workdir`` if given, its
    output appended to ``log`` if given (cron mails it otherwise).

    cron's PATH is short (``/usr/bin:/bin``), so give the command as an absolute path. ``%`` is escaped
    because crontab turns a bare ``%`` into a newline.
    """
    _check_every(every_minutes)
    _check_one_line(command, "command")
    step = "*" if every_minutes == 1 else f"*/{every_minutes}"
    shell = command.strip()
    if workdir is not None:
        _check_one_line(workdir, "workdir")
        shell = f"cd {shlex.quote(_absolute(workdir))} && {shell}"
    if log is not None:
        _check_one_line(log, "log")
        shell = f"{shell} >> {shlex.quote(log)} 2>&1"
    escaped = shell.replace("%", "\\%")
    return f"{step} * * * * {escaped}"


def systemd_units(name: str, command: str, workdir: str, every_minutes: int = 5) -> dict[str, str]:
    """``{NAME.service, NAME.timer}``: a oneshot service running ``command`` in ``workdir``, and a timer
    starting it every ``every_minutes`` minutes. ``Persistent=true`` runs a check missed while the machine
    was off at the next boot; systemd never starts the service again while a run is still going.

    For a user install: copy both to ``~/.config/systemd/user/``, then
    ``systemctl --user enable --now NAME.timer`` (and ``loginctl enable-linger`` to run while logged out).
    """
    _check_every(every_minutes)
    if not _UNIT_NAME.match(name):
        raise ValueError(f"{name!r} is not a systemd unit name")
    _check_one_line(command, "command")
    _check_one_line(workdir, "workdir")
    # systemd expands %-specifiers in both settings and $VARIABLES in ExecStart: keep them literal.
    directory = _absolute(workdir).replace("%", "%%")
    exec_start = command.strip().replace("%", "%%").replace("$", "$$")
    service = (
        "[Unit]\n"
        f"Description=durable-research: run the scheduled reports that are due ({name})\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={directory}\n"
        f"ExecStart={exec_start}\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=durable-research: check for due reports every {every_minutes} minutes ({name})\n\n"
        "[Timer]\n"
        f"OnCalendar=*:0/{every_minutes}\n"
        "Persistent=true\n"
        f"Unit={name}.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def _check_every(every_minutes: int) -> None:
    if isinstance(every_minutes, bool) or not isinstance(every_minutes, int) or not 1 <= every_minutes <= 59:
        raise ValueError(f"every_minutes must be a whole number from 1 to 59, got {every_minutes!r}")


def _check_one_line(value: str, what: str) -> None:
    if not value.strip() or "\n" in value or "\r" in value:
        raise ValueError(f"the {what} must be one non-empty line")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())
