"""The foreground scheduler: parsing, slots, failures, overruns, and a clean SIGTERM shutdown
(in-process and in a real child process)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import FrameType

import pytest

from ringscope.errors import RingScopeError
from ringscope.jobs.schedule import (
    MAX_WAIT_CHUNK_S,
    Schedule,
    ScheduleError,
    configure_logging,
    parse_schedule,
    run_schedule,
)

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 60.0  # generous: only there so that a broken scheduler fails instead of hanging
T0 = datetime(2024, 3, 1, 10, 37, 0, tzinfo=UTC)  # a Friday


class FakeClock:
    """A clock that only moves when the scheduler sleeps or a job says it took time."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        (" 2H ", 7200),
        ("1d2h3m4s", 86400 + 7200 + 180 + 4),
    ],
)
def test_parse_every(text: str, seconds: int) -> None:
    s = parse_schedule(text, None)
    assert s.interval == timedelta(seconds=seconds)
    assert s.cron is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "units d, h, m, s"),
        ("10", "units d, h, m, s"),
        ("h", "units d, h, m, s"),
        ("1.5h", "whole numbers"),
        ("30m1h", "in that order"),
        ("1w", "units d, h, m, s"),
        ("-1h", "units d, h, m, s"),
        ("0s", "longer than zero"),
        ("0h0m", "longer than zero"),
        ("400d", "at most 366d"),
    ],
)
def test_parse_every_rejects(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match="Invalid interval") as err:
        parse_schedule(text, None)
    assert says in str(err.value)
    assert repr(text) in str(err.value)
    assert isinstance(err.value, RingScopeError)


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("0 * * * *", "0 * * * *"),
        ("  */15   9-17 * * mon-fri ", "*/15 9-17 * * mon-fri"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_parse_cron(text: str, expr: str) -> None:
    s = parse_schedule(None, text)
    assert s.cron == expr
    assert s.interval is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected 5 fields"),
        ("0 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 0 * * * *", "got 6"),
        ("61 * * * *", "out of range"),
        ("a b c d e", "is not acceptable"),
        ("0 0 30 2 *", "failed to find next date"),  # 30 February never comes
    ],
)
def test_parse_cron_rejects(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match="Invalid cron expression") as err:
        parse_schedule(None, text)
    assert says in str(err.value)


@pytest.mark.parametrize(("every", "cron"), [(None, None), ("1h", "0 * * * *")])
def test_parse_needs_exactly_one(every: str | None, cron: str | None) -> None:
    with pytest.raises(ScheduleError, match="exactly one of --every"):
        parse_schedule(every, cron)


# --- slots ------------------------------------------------------------------------------------


def test_next_after_interval() -> None:
    hourly = parse_schedule("1h", None)
    # Unanchored: aligned to the epoch, so on the hour; always strictly after t.
    assert hourly.next_after(T0) == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert hourly.next_after(datetime(2024, 3, 1, 11, 0, tzinfo=UTC)) == datetime(
        2024, 3, 1, 12, 0, tzinfo=UTC
    )
    # Anchored (what run_schedule does): counted from the start.
    anchored = hourly.anchored(T0)
    assert anchored.next_after(T0) == T0 + timedelta(hours=1)
    assert anchored.next_after(T0 + timedelta(minutes=61)) == T0 + timedelta(hours=2)
    assert anchored.next_after(T0 - timedelta(minutes=1)) == T0
    odd = parse_schedule("1h30m", None).anchored(T0)
    assert odd.next_after(T0 + timedelta(hours=2)) == T0 + timedelta(hours=3)
    # Any timezone in, UTC out.
    plus2 = timezone(timedelta(hours=2))
    got = hourly.next_after(datetime(2024, 3, 1, 12, 37, tzinfo=plus2))
    assert got == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert got.tzinfo == UTC


def test_next_after_cron() -> None:
    quarter = parse_schedule(None, "*/15 * * * *")
    assert quarter.next_after(T0) == datetime(2024, 3, 1, 10, 45, tzinfo=UTC)
    on_slot = datetime(2024, 3, 1, 10, 45, tzinfo=UTC)
    assert quarter.next_after(on_slot) == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert quarter.next_after(on_slot + timedelta(microseconds=1)) == datetime(
        2024, 3, 1, 11, 0, tzinfo=UTC
    )
    weekdays = parse_schedule(None, "0 9 * * mon-fri")
    assert weekdays.next_after(T0) == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # Friday -> Monday
    # Cron fields are UTC, whatever the timezone of t.
    daily = parse_schedule(None, "0 11 * * *")
    t = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    got = daily.next_after(t)
    assert got == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert got.tzinfo == UTC
    assert quarter.anchored(T0) is quarter


def test_next_after_needs_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("1h", None).next_after(datetime(2024, 1, 1))


def test_schedule_has_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule()
    with pytest.raises(ValueError, match="positive"):
        Schedule(interval=timedelta(0))


# --- the loop (fake clock) ----------------------------------------------------------------------


def test_failed_runs_are_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    calls: list[datetime] = []

    def job() -> None:
        calls.append(clock())
        if len(calls) in (1, 3):
            raise RuntimeError(f"rebuild {len(calls)} broke")

    with caplog.at_level(logging.INFO, logger="ringscope.schedule"):
        summary = run_schedule(
            job,
            parse_schedule("10m", None),
            max_runs=4,
            clock=clock,
            sleep=clock.sleep,
            handle_signals=False,
        )
    assert (summary.runs, summary.failures, summary.skipped_slots) == (4, 2, 0)
    assert not summary.stopped_by_signal
    assert calls == [T0 + timedelta(minutes=10 * i) for i in range(4)]
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failed] == [
        "run 1 failed: RuntimeError: rebuild 1 broke",
        "run 3 failed: RuntimeError: rebuild 3 broke",
    ]
    assert all(r.exc_info is not None for r in failed)
    assert [getattr(r, "run", None) for r in failed] == [1, 3]


def test_overrun_skips_slots_instead_of_queueing(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    starts: list[datetime] = []

    def job() -> None:
        starts.append(clock())
        if len(starts) == 1:
            clock.advance(35)  # past the slots at +10, +20 and +30 s

    with caplog.at_level(logging.INFO, logger="ringscope.schedule"):
        summary = run_schedule(
            job,
            parse_schedule("10s", None),
            max_runs=3,
            clock=clock,
            sleep=clock.sleep,
            handle_signals=False,
        )
    assert summary.skipped_slots == 3
    assert summary.runs == 3
    assert starts == [T0, T0 + timedelta(seconds=40), T0 + timedelta(seconds=50)]
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warn) == 1
    assert getattr(warn[0], "skipped", None) == 3


def test_cron_overrun_and_first_slot_without_run_now() -> None:
    clock = FakeClock()  # 10:37:00
    starts: list[datetime] = []

    def job() -> None:
        starts.append(clock())
        if len(starts) == 1:
            clock.advance(150)  # 10:38 -> 10:40:30: the 10:39 and 10:40 slots pass

    summary = run_schedule(
        job,
        parse_schedule(None, "* * * * *"),
        max_runs=2,
        run_now=False,
        clock=clock,
        sleep=clock.sleep,
        handle_signals=False,
    )
    minute = timedelta(minutes=1)
    assert starts == [T0 + minute, T0 + 4 * minute]
    assert summary.skipped_slots == 2


def test_waits_are_cut_into_chunks() -> None:
    clock = FakeClock()
    summary = run_schedule(
        lambda: None,
        parse_schedule("1h", None),
        max_runs=2,
        clock=clock,
        sleep=clock.sleep,
        handle_signals=False,
    )
    assert summary.runs == 2
    assert max(clock.sleeps) <= MAX_WAIT_CHUNK_S
    assert sum(clock.sleeps) == pytest.approx(3600.0)


def test_max_runs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_runs"):
        run_schedule(lambda: None, parse_schedule("1h", None), max_runs=0)


# --- stopping (real clock, in-process) ----------------------------------------------------------


@pytest.fixture
def sentinel_handlers() -> Iterator[dict[int, object]]:
    """Known SIGTERM/SIGINT handlers to check run_schedule restores them."""

    def mine(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"signal {signum} reached the sentinel handler")

    before = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield {s: mine for s in before}
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_stop_event_wakes_the_wait() -> None:
    stop = threading.Event()
    t = time.monotonic()
    summary = run_schedule(
        lambda: threading.Timer(0.2, stop.set).start(),  # stop while waiting for the next run
        parse_schedule("1h", None),
        stop=stop,
    )
    assert time.monotonic() - t < DEADLINE_S
    assert summary.runs == 1
    assert not summary.stopped_by_signal


def test_sigint_while_waiting_returns(sentinel_handlers: dict[int, object]) -> None:
    watchdog = threading.Event()  # stops the loop if the signal got lost, so the test fails
    timer = threading.Timer(DEADLINE_S, watchdog.set)
    timer.start()
    ran = threading.Event()
    pid = os.getpid()

    def interrupt() -> None:  # once the handlers are in (the first run has started)
        if ran.wait(DEADLINE_S):
            time.sleep(0.2)
            os.kill(pid, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        summary = run_schedule(ran.set, parse_schedule("1h", None), stop=watchdog)
    finally:
        timer.cancel()
    assert summary.stopped_by_signal
    assert summary.signal == "SIGINT"
    assert summary.runs == 1
    for s, h in sentinel_handlers.items():
        assert signal.getsignal(s) is h


def test_sigterm_during_a_job_lets_it_finish(sentinel_handlers: dict[int, object]) -> None:
    steps: list[str] = []

    def job() -> None:
        steps.append("start")
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one does not abort the job either
        time.sleep(0.1)
        steps.append("done")

    summary = run_schedule(job, parse_schedule("1s", None))
    assert steps == ["start", "done"]
    assert summary.runs == 1
    assert summary.stopped_by_signal
    assert summary.signal == "SIGTERM"
    for s, h in sentinel_handlers.items():
        assert signal.getsignal(s) is h


# --- stopping a real child process --------------------------------------------------------------

CHILD = """
import json, sys, time
from pathlib import Path
from ringscope.jobs.schedule import configure_logging, parse_schedule, run_schedule

out, mode = Path(sys.argv[1]), sys.argv[2]
release = out.with_suffix(".release")

def note(line):
    with out.open("a") as f:
        f.write(line + "\\n")

def job():
    if mode == "quick":
        note("run")
        return
    note("start")
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    note("done")

configure_logging(json_logs=True)
summary = run_schedule(job, parse_schedule("1s", None))
print(json.dumps(summary.to_dict()), flush=True)
"""


def _spawn(out: Path, mode: str) -> subprocess.Popen[str]:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(proc: subprocess.Popen[str], path: Path, want: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _lines(path)[: len(want)] != want:
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child did not get to {want}: {proc.communicate()}")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str]) -> tuple[dict[str, object], list[dict[str, object]]]:
    try:
        stdout, stderr = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"child did not exit after SIGTERM: {proc.communicate()}") from None
    assert proc.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines()]
    return json.loads(stdout.strip().splitlines()[-1]), logs


@pytest.mark.slow
def test_sigterm_stops_a_child_between_runs(tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    proc = _spawn(out, "quick")
    _wait_for(proc, out, ["run", "run"])
    proc.send_signal(signal.SIGTERM)
    summary, logs = _finish(proc)
    assert summary["stopped_by_signal"] is True
    assert summary["signal"] == "SIGTERM"
    runs = summary["runs"]
    assert isinstance(runs, int)
    assert runs >= 2
    assert len(_lines(out)) == runs  # every run that started also finished
    assert summary["failures"] == 0
    # Structured logs: one JSON object per line with the standard keys and the extra fields.
    assert all({"ts", "level", "logger", "msg"} <= rec.keys() for rec in logs)
    assert any(rec.get("signal") == "SIGTERM" for rec in logs)
    assert logs[-1]["msg"] == "scheduler stopped"
    assert logs[-1]["runs"] == runs


@pytest.mark.slow
def test_sigterm_during_a_child_job_lets_it_finish(tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    proc = _spawn(out, "slow")
    _wait_for(proc, out, ["start"])  # the job is now blocked until the release file exists
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # a second SIGTERM must not kill it mid-job either
    time.sleep(0.2)
    (tmp_path / "runs.release").touch()
    summary, logs = _finish(proc)
    assert _lines(out) == ["start", "done"]
    assert summary["stopped_by_signal"] is True
    assert summary["runs"] == 1
    stop = [rec for rec in logs if rec.get("signal") == "SIGTERM"]
    assert stop[0]["state"] == "running"
    assert "still waiting for the running job" in str(stop[1]["msg"])


# --- logging ------------------------------------------------------------------------------------


def _log_through(json_logs: bool | None) -> str:
    stream = io.StringIO()
    handler = configure_logging(json_logs, stream=stream)
    try:
        log = logging.getLogger("ringscope.test")
        log.info("rebuild %s done", "b-1", extra={"seconds": 1.5, "clusters": 3})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("rebuild failed")
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue()


def test_json_logs() -> None:
    first, second = (json.loads(line) for line in _log_through(True).splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == "ringscope.test"
    assert first["msg"] == "rebuild b-1 done"
    assert (first["seconds"], first["clusters"]) == (1.5, 3)
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert second["level"] == "ERROR"
    assert "ValueError: bad" in second["exc"]


def test_human_logs_and_terminal_detection() -> None:
    text = _log_through(False)
    assert "INFO    ringscope.test: rebuild b-1 done  seconds=1.5 clusters=3" in text
    assert "ValueError: bad" in text
    # A StringIO is not a terminal: the default is JSON.
    assert json.loads(_log_through(None).splitlines()[0])["msg"] == "rebuild b-1 done"
