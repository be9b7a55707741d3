"""Periodic jobs in the foreground: ``ringscope schedule --every 1h`` or ``--cron "0 * * * *"``.

The scheduler is deliberately small: one job, run in the calling thread, never two at once.

* **Slots.** A schedule is a sequence of UTC instants. An interval (``--every``) is measured from
  the scheduler's start; a cron expression (5 fields, evaluated in UTC) is wall-clock aligned.
* **Failures** are logged with their traceback and counted; the loop goes on, because one failed
  rebuild (Neo4j restarting, say) must not stop the next one.
* **Overruns.** A run that lasts past the next slot(s) makes those slots *skipped* (logged and
  counted), not queued: the next run is at the first slot after the run ended, so runs never
  overlap and a slow week does not leave a backlog behind.
* **Shutdown.** SIGTERM and SIGINT only ask the loop to stop. While waiting it wakes at once and
  returns; while the job runs, the job is allowed to finish (a rebuild then either switches
  readers or marks its build failed, never half of each) and the loop returns after it. Further
  signals while stopping are logged and ignored as well: nothing short of SIGKILL (or SIGQUIT)
  interrupts a running job. The previous signal handlers are restored on return.

:func:`configure_logging` sets up structured logs (JSON lines when stderr is not a terminal) for
the scheduler and for whatever it runs.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, TextIO

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

from ringscope.errors import RingScopeError

log = logging.getLogger("ringscope.schedule")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INTERVAL = timedelta(days=366)
# Waits are cut into chunks this long, so a stepped wall clock (NTP, suspend) is noticed.
MAX_WAIT_CHUNK_S = 60.0

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_INTERVAL = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(RingScopeError):
    """A schedule given on the command line could not be understood."""


# --- schedules --------------------------------------------------------------------------------


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"A timezone-aware datetime is needed, got naive {t.isoformat()}.")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """When to run: every ``interval`` (from ``anchor``) or at the slots of ``cron`` (UTC).

    Exactly one of ``interval`` and ``cron`` is set; build one with :func:`parse_schedule`.
    An interval without an anchor is aligned to the Unix epoch (``1h`` on the hour);
    :func:`run_schedule` anchors it at its own start, so ``--every 1h`` means "now, then hourly".
    """

    interval: timedelta | None = None
    cron: str | None = None
    anchor: datetime | None = None
    text: str = ""

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("A Schedule has exactly one of interval and cron.")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("A Schedule's interval must be positive.")

    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly after ``t`` (aware datetime), in UTC."""
        t = _utc(t)
        if self.interval is not None:
            anchor = _utc(self.anchor) if self.anchor is not None else EPOCH
            k = (t - anchor) // self.interval + 1
            return anchor + k * self.interval
        assert self.cron is not None
        nxt: datetime = croniter(self.cron, t).get_next(datetime)
        return _utc(nxt)

    def anchored(self, at: datetime) -> Schedule:
        """This schedule with intervals counted from ``at`` (cron schedules are unchanged)."""
        if self.interval is None:
            return self
        return Schedule(interval=self.interval, anchor=_utc(at), text=self.text)

    def __str__(self) -> str:
        return self.text or (f"every {self.interval}" if self.interval else f"cron {self.cron}")


def parse_interval(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``1d``, ``1h30m``: whole numbers, units d/h/m/s in that order."""
    s = text.strip().lower().replace(" ", "")
    m = _INTERVAL.fullmatch(s)
    if not s or m is None or not any(m.groups()):
        raise ScheduleError(
            f"Invalid interval {text!r}: use whole numbers with units d, h, m, s in that order, "
            "e.g. 90s, 15m, 1h, 1d or 1h30m."
        )
    seconds = sum(int(v) * _UNITS[u] for v, u in zip(m.groups(), "dhms", strict=True) if v)
    if seconds <= 0:
        raise ScheduleError(f"Invalid interval {text!r}: it must be longer than zero.")
    if seconds > MAX_INTERVAL.total_seconds():
        raise ScheduleError(f"Invalid interval {text!r}: at most {MAX_INTERVAL.days}d.")
    return timedelta(seconds=seconds)


def parse_cron(text: str) -> str:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), or an @alias."""
    expr = " ".join(text.split())
    expr = _CRON_ALIASES.get(expr.lower(), expr)
    fields = expr.split(" ") if expr else []
    if len(fields) != 5:
        raise ScheduleError(
            f"Invalid cron expression {text!r}: expected 5 fields (minute hour day-of-month "
            f"month day-of-week), got {len(fields)}."
        )
    try:
        # A valid expression that never fires (30 February) fails here, not at the first wait.
        croniter(expr, EPOCH).get_next(datetime)
    except (ValueError, KeyError, TypeError) as exc:
        raise ScheduleError(f"Invalid cron expression {text!r}: {exc}.") from None
    return expr


def parse_schedule(every: str | None, cron: str | None) -> Schedule:
    """The schedule named by ``--every`` or ``--cron``; exactly one of them must be given."""
    if (every is None) == (cron is None):
        raise ScheduleError(
            "Give exactly one of --every (e.g. 1h, 15m, 1h30m) or --cron (e.g. '0 * * * *')."
        )
    if every is not None:
        return Schedule(interval=parse_interval(every), text=f"every {every.strip()}")
    assert cron is not None
    expr = parse_cron(cron)
    return Schedule(cron=expr, text=f"cron '{expr}' (UTC)")


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSummary:
    """What a scheduler run did, for the exit message (and the tests)."""

    runs: int
    failures: int
    skipped_slots: int
    stopped_by_signal: bool
    signal: str | None  # the first stop signal's name, e.g. "SIGTERM"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stopper:
    """The stop flag plus the signal handlers that set it.

    A handler runs in the main thread between bytecodes, possibly inside ``Event.wait`` while
    that holds the event's (non-reentrant) lock, so it never calls ``Event.set`` itself: it sets
    a plain flag and, when the loop is waiting, lets a short-lived thread set the event.
    """

    def __init__(self, event: threading.Event, log: logging.Logger) -> None:
        self.event = event
        self.log = log
        self.requested = False
        self.signal: str | None = None
        self.waiting = False
        self.job_running = False
        self._previous: dict[int, Any] = {}

    def stopping(self) -> bool:
        return self.requested or self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        name = signal.Signals(signum).name
        if self.requested:
            self.log.warning(
                "%s received again; still waiting for the running job to finish (SIGKILL to "
                "abort it)",
                name,
                extra={"signal": name},
            )
            return
        self.requested = True
        self.signal = name
        state = "running" if self.job_running else "waiting"
        self.log.info(
            "%s received; stopping %s",
            name,
            "after the running job finishes" if self.job_running else "now",
            extra={"signal": name, "state": state},
        )
        if self.waiting:
            threading.Thread(target=self.event.set, name="schedule-stop", daemon=True).start()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.log.warning(
                "not in the main thread: SIGTERM/SIGINT are not handled; set the stop event"
            )
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _now() -> datetime:
    return datetime.now(UTC)


def run_schedule(
    job: Callable[[], object],
    schedule: Schedule,
    *,
    max_runs: int | None = None,
    run_now: bool = True,
    clock: Callable[[], datetime] = _now,
    sleep: Callable[[float], object] | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    log: logging.Logger = log,
) -> ScheduleSummary:
    """Run ``job`` at the slots of ``schedule`` until stopped or ``max_runs`` runs are done.

    ``run_now`` runs once at the start (then at the slots); ``clock`` (aware UTC datetimes) and
    ``sleep`` (seconds) are for tests: by default the wall clock and ``stop.wait``, which returns
    at once when a stop is requested. ``stop`` lets another thread stop the loop like a signal.
    The job's return value is ignored; an exception from it is logged and counted as a failure.
    """
    if max_runs is not None and max_runs < 1:
        raise ValueError("max_runs must be at least 1 (or None for no limit).")
    event = stop if stop is not None else threading.Event()
    wait = sleep if sleep is not None else event.wait
    stopper = _Stopper(event, log)
    runs = failures = skipped = 0
    start = clock()
    sched = schedule.anchored(start)
    slot = start if run_now else sched.next_after(start)
    if handle_signals:
        stopper.install()
    try:
        log.info(
            "scheduler started: %s",
            sched,
            extra={"schedule": str(sched), "next_run": slot.isoformat(), "max_runs": max_runs},
        )
        while not stopper.stopping():
            # Wait for the slot. The flag is set before it is checked, so a signal arriving
            # between the check and the wait still wakes the wait (see _Stopper).
            stopper.waiting = True
            try:
                while not stopper.stopping():
                    remaining = (slot - clock()).total_seconds()
                    if remaining <= 0:
                        break
                    wait(min(remaining, MAX_WAIT_CHUNK_S))
            finally:
                stopper.waiting = False
            if stopper.stopping():
                break

            runs += 1
            t0 = time.monotonic()
            log.info("run %d started", runs, extra={"run": runs, "slot": slot.isoformat()})
            stopper.job_running = True
            try:
                job()
            except Exception as exc:
                failures += 1
                seconds = round(time.monotonic() - t0, 3)
                log.exception(
                    "run %d failed: %s: %s",
                    runs,
                    type(exc).__name__,
                    exc,
                    extra={"run": runs, "seconds": seconds, "error": type(exc).__name__},
                )
            else:
                log.info(
                    "run %d finished",
                    runs,
                    extra={"run": runs, "seconds": round(time.monotonic() - t0, 3)},
                )
            finally:
                stopper.job_running = False
            if max_runs is not None and runs >= max_runs:
                log.info("reached max_runs=%d", max_runs, extra={"max_runs": max_runs})
                break

            # The next slot after the one just served; those already past are skipped.
            end = clock()
            nxt = sched.next_after(slot)
            missed = 0
            while nxt < end:
                missed += 1
                nxt = sched.next_after(nxt)
            if missed:
                skipped += missed
                log.warning(
                    "run %d overran %d slot(s); skipped them, not queued",
                    runs,
                    missed,
                    extra={"run": runs, "skipped": missed, "next_run": nxt.isoformat()},
                )
            slot = nxt
            if not stopper.stopping():
                log.info("next run at %s", slot.isoformat(), extra={"next_run": slot.isoformat()})
    finally:
        stopper.restore()
    summary = ScheduleSummary(
        runs=runs,
        failures=failures,
        skipped_slots=skipped,
        stopped_by_signal=stopper.signal is not None,
        signal=stopper.signal,
    )
    log.info("scheduler stopped", extra=summary.to_dict())
    return summary


# --- logging ----------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the ``extra`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in _extra(record).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _extra(record)
        if not extra:
            return text
        head, sep, tail = text.partition("\n")  # keep key=value on the message's line
        pairs = " ".join(f"{k}={v}" for k, v in extra.items())
        return f"{head}  {pairs}{sep}{tail}"


class _RingScopeHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def configure_logging(
    json_logs: bool | None = None, *, level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Log to stderr: JSON lines when it is not a terminal (or ``json_logs``), else readable.

    Installs one handler on the root logger (replacing one from an earlier call) and sets
    RingScope's own loggers (``ringscope.*``) to ``level``; other libraries keep the root's
    level (WARNING by default). Returns the handler (to remove it again, e.g. in tests).
    """
    stream = stream if stream is not None else sys.stderr
    if json_logs is None:
        isatty = getattr(stream, "isatty", None)
        json_logs = not (callable(isatty) and isatty())
    handler = _RingScopeHandler(stream)
    handler.setFormatter(JsonFormatter() if json_logs else HumanFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RingScopeHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    logging.getLogger("ringscope").setLevel(level)
    return handler
