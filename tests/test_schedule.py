"""Schedule slots: cron in a timezone, daylight saving time, labels, --at, and the cron/systemd timers."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from agent.schedule import (check_cron, crontab_line, latest_slot, next_slot, parse_at, slot_label, slot_stem,
                            slots_between, systemd_units)

UTC = timezone.utc
PARIS = "Europe/Paris"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_day(expr: str, tz: str, day: str) -> list[str]:
    """The slots whose local date is ``day``, as local times with their offset."""
    zone = ZoneInfo(tz)
    d = datetime.fromisoformat(day).date()
    start = datetime.combine(d, datetime.min.time()).replace(tzinfo=zone) - timedelta(days=1)
    slots = slots_between(expr, tz, start, start + timedelta(days=3))
    return [s.astimezone(zone).strftime("%H:%M%z") for s in slots if s.astimezone(zone).date() == d]


# check_cron

@pytest.mark.parametrize("expr", ["0 6 * * *", " 0  6 * *   * ", "*/15 8-18 * * mon-fri", "@daily", "0 0 29 2 *"])
def test_check_cron_accepts_five_fields_and_nicknames(expr):
    assert check_cron(expr) == " ".join(expr.split())


@pytest.mark.parametrize("expr, reason", [
    ("0 6 * *", "4 field"),
    ("0 6 * * * *", "6 field"),
    ("", "0 field"),
    ("0 24 * * *", "out of range"),
    ("61 6 * * *", "out of range"),
    ("a b c d e", "'a b c d e'"),
    ("0 0 31 2 *", "never fires"),
    ("@reboot", "field"),
])
def test_check_cron_rejects_with_a_reason(expr, reason):
    with pytest.raises(ValueError) as info:
        check_cron(expr)
    assert reason in str(info.value)


# Slots on ordinary days

def test_latest_slot_is_at_or_before_now_and_next_slot_strictly_after():
    expr = "0 6 * * *"  # 06:00 Paris in November is 05:00 UTC
    assert latest_slot(expr, PARIS, utc(2026, 11, 23, 5, 0)) == utc(2026, 11, 23, 5, 0)
    assert latest_slot(expr, PARIS, utc(2026, 11, 23, 4, 59, 59)) == utc(2026, 11, 22, 5, 0)
    assert next_slot(expr, PARIS, utc(2026, 11, 23, 5, 0)) == utc(2026, 11, 24, 5, 0)
    assert next_slot(expr, PARIS, utc(2026, 11, 23, 4, 59, 59)) == utc(2026, 11, 23, 5, 0)
    assert latest_slot(expr, PARIS, utc(2026, 11, 23, 12)).tzinfo == UTC


def test_results_are_utc_whatever_zone_the_input_is_in():
    now = datetime(2026, 11, 23, 7, 30, tzinfo=ZoneInfo(PARIS))
    slot = latest_slot("0 6 * * *", PARIS, now)
    assert slot == utc(2026, 11, 23, 5, 0) and slot.utcoffset() == timedelta(0)


def test_naive_datetimes_and_unknown_zones_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_slot("0 6 * * *", PARIS, datetime(2026, 11, 23, 6))
    with pytest.raises(ValueError, match="unknown timezone"):
        next_slot("0 6 * * *", "Mars/Olympus_Mons", utc(2026, 11, 23))
    with pytest.raises(ValueError):
        next_slot("0 6 * *", PARIS, utc(2026, 11, 23))


def test_slots_between_excludes_start_includes_end_and_is_bounded():
    expr = "0 * * * *"
    slots = slots_between(expr, "UTC", utc(2026, 1, 1, 0), utc(2026, 1, 1, 3))
    assert slots == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]
    assert slots_between("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2), limit=10) == [
        utc(2026, 1, 1, 0, m) for m in range(1, 11)]
    assert len(slots_between("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2))) == 1000
    assert slots_between(expr, "UTC", utc(2026, 1, 1, 3), utc(2026, 1, 1, 3)) == []


# Daylight saving time, Europe/Paris 2026: clocks go 02:00 -> 03:00 on Mar 29 and 03:00 -> 02:00 on Oct 25

def test_a_normal_day_has_one_slot_at_its_wall_time():
    assert local_day("30 2 * * *", PARIS, "2026-03-28") == ["02:30+0100"]
    assert local_day("30 2 * * *", PARIS, "2026-03-30") == ["02:30+0200"]


def test_spring_forward_moves_a_skipped_time_forward_by_the_gap():
    # 02:30 does not exist on Mar 29: it runs once, at 03:30 CEST (01:30 UTC), not at 03:00.
    assert local_day("30 2 * * *", PARIS, "2026-03-29") == ["03:30+0200"]
    assert next_slot("30 2 * * *", PARIS, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 30)
    # Both skipped times keep their own slot (croniter alone folds them both onto 03:00).
    assert local_day("*/30 2 * * *", PARIS, "2026-03-29") == ["03:00+0200", "03:30+0200"]
    # 02:00 moved forward is 03:00: the same instant as the real 03:00, so one slot.
    assert local_day("0 2,3 * * *", PARIS, "2026-03-29") == ["03:00+0200"]
    assert len(local_day("0 * * * *", PARIS, "2026-03-29")) == 23


def test_fall_back_runs_a_repeated_time_once_at_its_first_occurrence():
    assert local_day("30 2 * * *", PARIS, "2026-10-25") == ["02:30+0200"]
    assert next_slot("30 2 * * *", PARIS, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)
    # Just after the second 02:30 happened, the latest slot is still the first one.
    assert latest_slot("30 2 * * *", PARIS, utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)
    # In the repeated hour (02:10 winter time), the first pass's 02:30 is already behind us.
    assert latest_slot("30 2 * * *", PARIS, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 30)
    hours = local_day("0 * * * *", PARIS, "2026-10-25")
    assert len(hours) == 24 and hours.count("02:00+0200") == 1 and "02:00+0100" not in hours


def test_just_after_the_gap_latest_slot_does_not_see_a_slot_still_to_come():
    # 03:10 CEST: today's 02:30 (run at 03:30) has not happened yet; yesterday's is the latest.
    assert latest_slot("30 2 * * *", PARIS, utc(2026, 3, 29, 1, 10)) == utc(2026, 3, 28, 1, 30)
    assert next_slot("30 2 * * *", PARIS, utc(2026, 3, 29, 1, 10)) == utc(2026, 3, 29, 1, 30)


def test_mondays_at_six_in_new_york_across_both_transitions():
    # US clocks change on Sunday Mar 8 and Sunday Nov 1 2026: 06:00 stays 06:00 local each Monday.
    ny = ZoneInfo("America/New_York")
    spring = slots_between("0 6 * * 1", "America/New_York", utc(2026, 3, 1), utc(2026, 3, 17))
    assert spring == [utc(2026, 3, 2, 11), utc(2026, 3, 9, 10), utc(2026, 3, 16, 10)]
    fall = slots_between("0 6 * * 1", "America/New_York", utc(2026, 10, 25), utc(2026, 11, 10))
    assert fall == [utc(2026, 10, 26, 10), utc(2026, 11, 2, 11), utc(2026, 11, 9, 11)]
    for slot in spring + fall:
        local = slot.astimezone(ny)
        assert (local.weekday(), local.hour, local.minute) == (0, 6, 0)


@pytest.mark.parametrize("expr, tz, around", [
    ("*/20 * * * *", PARIS, utc(2026, 3, 29, 1)),
    ("*/20 * * * *", PARIS, utc(2026, 10, 25, 1)),
    ("10,50 2,3 * * *", PARIS, utc(2026, 3, 29, 1)),
    ("10,50 2,3 * * *", PARIS, utc(2026, 10, 25, 1)),
    ("*/15 1-3 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 15)),   # back 30 minutes, 02:00 -> 01:30
    ("*/15 1-3 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 15)),  # forward 30 minutes, 02:00 -> 02:30
    # Minutes that a 30-minute shift does not map onto each other: the moved 02:25 (02:55) runs after
    # the real 02:50, so slot order and wall-time order differ.
    ("25,50 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 15)),
    ("25,50 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 15)),
    ("30 2 * * *", "America/New_York", utc(2026, 3, 8, 7)),
])
def test_slots_match_the_rule_walked_out_minute_by_minute(expr, tz, around):
    """Against a plain reference: every matching local wall time (croniter over naive times, where DST
    cannot interfere), read with fold=0, is a slot. next_slot/latest_slot must agree with it everywhere."""
    zone = ZoneInfo(tz)
    lo = (around - timedelta(days=3)).astimezone(zone).replace(tzinfo=None)
    hi = (around + timedelta(days=3)).astimezone(zone).replace(tzinfo=None)
    reference: set[datetime] = set()
    walls = croniter(expr, lo)
    while (wall := walls.get_next(datetime)) <= hi:
        reference.add(wall.replace(tzinfo=zone, fold=0).astimezone(UTC))
    ordered = sorted(reference)
    window = (around - timedelta(hours=30), around + timedelta(hours=30))
    assert slots_between(expr, tz, *window) == [s for s in ordered if window[0] < s <= window[1]]
    # Every 13 minutes over the window, and every minute in the hours around the transition.
    times = [window[0] + timedelta(minutes=13 * i) for i in range(int((window[1] - window[0]) / timedelta(minutes=13)))]
    times += [around + timedelta(minutes=m) for m in range(-120, 180)]
    for t in times:
        assert next_slot(expr, tz, t) == min(s for s in ordered if s > t), t
        assert latest_slot(expr, tz, t) == max(s for s in ordered if s <= t), t


# Labels, stems and --at

def test_slot_label_is_utc_to_the_minute():
    assert slot_label(datetime(2026, 11, 23, 7, 0, 42, tzinfo=ZoneInfo(PARIS))) == "2026-11-23T06:00Z"
    assert slot_label(utc(2026, 11, 23, 6)) == "2026-11-23T06:00Z"
    with pytest.raises(ValueError):
        slot_label(datetime(2026, 11, 23, 6))


def test_slot_stem_is_the_local_date_unless_the_day_has_several_slots():
    # 00:30 Paris on Nov 23 is still Nov 22 in UTC: the stem is the report's own (local) day.
    assert slot_stem("30 0 * * *", PARIS, utc(2026, 11, 22, 23, 30)) == "2026-11-23"
    assert slot_stem("0 * * * *", PARIS, utc(2026, 11, 23, 5)) == "2026-11-23T0600"
    assert slot_stem("0 6,18 * * *", PARIS, utc(2026, 11, 23, 17)) == "2026-11-23T1800"
    assert slot_stem("0 6 * * 1", "America/New_York", utc(2026, 11, 23, 11)) == "2026-11-23"
    # Mar 29: '*/30 2' has two slots (03:00 and 03:30); '0 2,3' only one, as the two times coincide.
    assert slot_stem("*/30 2 * * *", PARIS, utc(2026, 3, 29, 1, 30)) == "2026-03-29T0330"
    assert slot_stem("0 2,3 * * *", PARIS, utc(2026, 3, 29, 1)) == "2026-03-29"
    assert slot_stem("0 2,3 * * *", PARIS, utc(2026, 3, 30, 0)) == "2026-03-30T0200"


def test_parse_at_reads_offsets_z_naive_times_and_dates():
    assert parse_at("2026-11-23T06:00Z", PARIS) == utc(2026, 11, 23, 6)
    assert parse_at("2026-11-23T06:00+02:00", PARIS) == utc(2026, 11, 23, 4)
    assert parse_at("2026-11-23T06:00", PARIS) == utc(2026, 11, 23, 5)  # naive: Paris time
    assert parse_at("2026-11-23 06:00", "UTC") == utc(2026, 11, 23, 6)
    assert parse_at("2026-03-29T02:30", PARIS) == utc(2026, 3, 29, 1, 30)  # skipped: moved forward
    # A date is the end of that local day: callers then pick the day's last slot.
    end = parse_at("2026-11-23", PARIS)
    assert end == utc(2026, 11, 23, 22, 59, 59)
    assert latest_slot("0 6,18 * * *", PARIS, end) == utc(2026, 11, 23, 17)
    assert parse_at("2026-10-25", PARIS) == utc(2026, 10, 25, 22, 59, 59)  # a 25-hour day
    assert parse_at("2026-11-23", "UTC") == utc(2026, 11, 23, 23, 59, 59)


@pytest.mark.parametrize("text", ["", "tomorrow", "2026-13-01", "2026-11-31", "2026-11-23T25:00", "20261123",
                                  "06:00", "2026-11-23Tjunk"])
def test_parse_at_rejects_junk(text):
    with pytest.raises(ValueError):
        parse_at(text, PARIS)


# The timers that run 'research report due'

def test_crontab_line_parses_back_into_schedule_and_command():
    line = crontab_line("/opt/research/bin/research report due")
    fields = line.split(None, 5)
    assert fields[5] == "/opt/research/bin/research report due"
    it = croniter(" ".join(fields[:5]), datetime(2026, 1, 1, 0, 1))
    assert [it.get_next(datetime).minute for _ in range(4)] == [5, 10, 15, 20]
    assert crontab_line("research report due", every_minutes=1).split(None, 5)[:5] == ["*"] * 5
    for bad in (0, 60, True):
        with pytest.raises(ValueError):
            crontab_line("research report due", every_minutes=bad)
    with pytest.raises(ValueError):
        crontab_line("research report due\nrm -rf /")


def test_crontab_command_runs_in_the_workdir_and_appends_to_the_log(tmp_path):
    workdir = tmp_path / "it's a dir"
    workdir.mkdir()
    log = tmp_path / "due log.txt"
    line = crontab_line('printf "ran 100%% in %s\\n" "$PWD"', workdir=str(workdir), log=str(log))
    schedule, command = " ".join(line.split(None, 5)[:5]), line.split(None, 5)[5]
    assert croniter.is_valid(schedule)
    assert "%" not in command.replace("\\%", "")  # a bare % would be a newline to cron
    # cron hands the rest of the line, its \% unescaped, to /bin/sh.
    for _ in range(2):
        subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], check=True, cwd=tmp_path)
    assert log.read_text() == f"ran 100% in {workdir}\n" * 2
    assert shlex.split(command)[:3] == ["cd", str(workdir), "&&"]


def test_systemd_units_are_a_oneshot_service_and_a_persistent_timer(tmp_path):
    units = systemd_units("research-report", "/opt/research/bin/research report due", str(tmp_path / "w 100%"))
    assert set(units) == {"research-report.service", "research-report.timer"}
    service = configparser.ConfigParser(interpolation=None)
    service.optionxform = str
    service.read_string(units["research-report.service"])
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["WorkingDirectory"] == f"{tmp_path}/w 100%%"  # systemd reads %% as %
    assert service["Service"]["ExecStart"] == "/opt/research/bin/research report due"
    timer = configparser.ConfigParser(interpolation=None)
    timer.optionxform = str
    timer.read_string(units["research-report.timer"])
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["OnCalendar"] == "*:0/5"
    assert timer["Timer"]["Unit"] == "research-report.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert systemd_units("r", "x", "/", every_minutes=15)["r.timer"].count("OnCalendar=*:0/15\n") == 1
    assert "$$HOME" in systemd_units("r", "/bin/echo $HOME", "/")["r.service"]
    with pytest.raises(ValueError):
        systemd_units("bad name", "x", "/")
    with pytest.raises(ValueError):
        systemd_units("r", "x", "relative\nline")
    assert "WorkingDirectory=/" in systemd_units("r", "x", "relative")["r.service"]  # made absolute


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    units = systemd_units("research-report", f"{sys.executable} -c pass", str(tmp_path))
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    on_calendar = units["research-report.timer"].split("OnCalendar=")[1].split("\n")[0]
    calendar = subprocess.run(["systemd-analyze", "calendar", on_calendar], capture_output=True, text=True)
    assert calendar.returncode == 0 and "*-*-* *:00/5:00" in calendar.stdout
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "research-report.timer"),
                             str(tmp_path / "research-report.service")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert "research-report" not in verify.stderr, verify.stderr
