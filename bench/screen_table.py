"""Screening with and without the build's feature table (``models/screen_table.py``), side by
side in one process on one world: where a screen's time goes, per kind of event.

    python bench/screen_table.py --data-dir DIR --neo4j-port PORT --model-dir DIR
                                 [--events 400] [--rounds 2] [--out FILE]

The world is one ``bench/screen.py`` loaded and rebuilt (``--reuse`` there; its options name it
the same way); its current build must have a table (a rebuild with ``RINGSCOPE_SCREEN_TABLE``
on, the default). The events: ``bench/screen.py``'s pool and mix (payments of known accounts to
known payees, sign-ups on ring and shared identifiers, all-new sign-ups, hub IPs), screened in
process (``api.service.screen_event``, no HTTP, nothing written), the same events with the table
off and on, alternated ``--rounds`` times so that drift in the machine's speed shows in both.
Per setting and kind: mean, p50, p99 of a screen and the mean time in Neo4j reads (wall time
of ``Graph.read`` and of each read in ``Graph.reads``, decoding included; until session 35 it
timed ``Graph.read`` alone, which screens stopped using in session 29, so it read 0), the
accounts read and the rows taken from the table; the ratio on/off of the means; and the
process's peak RSS. Writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from screen import Pool, configure, cpu_seconds  # noqa: E402

# ScreenEvent's list fields -> identifier kinds (api/schema/screening.py EVENT_FIELDS).
FIELDS = {"devices": "device", "phones": "phone", "ips": "ip", "emails": "email",
          "idDocuments": "id_document", "bankCards": "bank_card"}  # fmt: skip


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def pool_events(pool: Pool, n: int, tag: str) -> list[tuple[str, Any]]:
    """``n`` events of ``bench/screen.py``'s pool and mix, each with its kind, as the loader's
    ``ingest.events.Event`` (event ids ``<tag>-i``, new accounts ``NEW-<TAG>-i``): what the
    in-process benches screen."""
    from ringscope.ingest.events import Event

    out: list[tuple[str, Any]] = []
    for i, kind in enumerate(pool.kinds(n)):
        d = pool.event(kind, f"{tag}-{i}", f"NEW-{tag.upper()}-{i}")
        ids = {FIELDS[k]: v for k, v in d.items() if k in FIELDS and v}
        at = datetime.fromisoformat(d["at"])
        ev = Event(d["eventId"], d["accountId"], at, d["type"], ids, d.get("payee"),
                   d.get("amount"), d.get("currency"), d.get("kycLevel"))  # fmt: skip
        out.append((kind, ev))
    return out


@dataclass
class Rotation:
    """Per variant: the mean CPU a screen of each round, Python (this process) and Neo4j (the
    pids given), each screen's wall time, and each event's score."""

    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    db: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    walls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    scores: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))


def rotate(
    graph: Any,
    variants: dict[str, tuple[Any, list[Any]]],
    rounds: int,
    region: str,
    pids: Sequence[int] = (),
    after: Callable[[str, list[Any]], None] | None = None,
) -> Rotation:
    """Screen each variant's events (``name -> (model store, events)``) in process, first 50 of
    each to warm (plans, the model, the table's pages), then ``rounds`` times, the variants'
    order rotated each round so that drift in the machine's speed shows in all; ``after(name,
    events)`` runs after each variant's turn (more timings of the same events)."""
    from ringscope.api.service import screen_event

    for store, events in variants.values():
        for e in events[:50]:
            screen_event(graph, store, e, region=region, budget=0)
    out = Rotation()
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            store, events = variants[name]
            t, n0 = time.process_time(), cpu_seconds(list(pids))
            for e in events:
                w = time.perf_counter()
                rec, _ = screen_event(graph, store, e, region=region, budget=0)
                out.walls[name].append(1000 * (time.perf_counter() - w))
                out.scores[name][e.event_id] = rec.score
            out.cpu[name].append(1000 * (time.process_time() - t) / len(events))
            out.db[name].append(1000 * (cpu_seconds(list(pids)) - n0) / len(events))
            if after is not None:
                after(name, events)
    return out


def world_args(doc: str, rounds: int, seed: int) -> argparse.Namespace:
    """The in-process benches' options: the events and rounds, and the world as
    ``bench/screen.py`` names it (made ``RINGSCOPE_*`` variables by ``configure``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--seed", type=int, default=seed)
    for name in ("--data-dir", "--model-dir"):
        ap.add_argument(name, type=Path)
    for name in ("--neo4j-port", "--neo4j-http-port"):
        ap.add_argument(name, type=int)
    ap.add_argument("--neo4j-heap")
    ap.add_argument("--neo4j-pagecache")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configure(args)
    return args


def main() -> None:
    args = world_args(__doc__ or "", rounds=2, seed=11)

    from ringscope.api.service import screen_event
    from ringscope.graph import connect
    from ringscope.models.store import ModelStore
    from ringscope.settings import Settings

    settings = Settings()
    graph = connect(settings)
    pool = Pool(graph, args.seed, "tbl")
    events = pool_events(pool, args.events, "st")
    models = ModelStore(settings.models_dir)
    read_s = [0.0]
    plain = graph.read

    def timed(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return plain(*a, **kw)
        finally:
            read_s[0] += time.perf_counter() - t

    graph.read = timed  # type: ignore[method-assign]
    plain_reads = graph.reads

    class TimedReads:
        """A screen's reads share one transaction (``Graph.reads``): time each of them."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def read(self, *a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return self.inner.read(*a, **kw)
            finally:
                read_s[0] += time.perf_counter() - t

    @contextlib.contextmanager
    def timed_reads() -> Iterator[Any]:
        with plain_reads() as reads:
            yield TimedReads(reads)

    graph.reads = timed_reads  # type: ignore[method-assign]
    for _, ev in events[:20]:  # the model loaded, the queries planned, the table mapped
        for use in (False, True):
            screen_event(graph, models, ev, region=settings.default_region, budget=0,
                         use_table=use)  # fmt: skip
    runs: dict[bool, dict[str, list[dict[str, float]]]] = {False: defaultdict(list),
                                                           True: defaultdict(list)}  # fmt: skip
    for r in range(args.rounds):
        for use in (False, True) if r % 2 == 0 else (True, False):
            for kind, ev in events:
                read_s[0] = 0.0
                t = time.perf_counter()
                rec, _ = screen_event(graph, models, ev, region=settings.default_region,
                                      budget=0, use_table=use)  # fmt: skip
                runs[use][kind].append({
                    "s": time.perf_counter() - t, "read_s": read_s[0],
                    "accounts": rec.accounts_read, "table_rows": rec.table_rows,
                })  # fmt: skip
    graph.close()

    def summary(rows: list[dict[str, float]]) -> dict[str, float]:
        ms = [1000 * x["s"] for x in rows]
        return {
            "n": len(rows),
            "mean_ms": round(statistics.mean(ms), 2),
            "p50_ms": round(pct(ms, 0.5), 2),
            "p99_ms": round(pct(ms, 0.99), 2),
            "read_mean_ms": round(1000 * statistics.mean(x["read_s"] for x in rows), 2),
            "accounts_read_mean": round(statistics.mean(x["accounts"] for x in rows), 1),
            "table_rows_mean": round(statistics.mean(x["table_rows"] for x in rows), 1),
        }

    out: dict[str, Any] = {"events": args.events, "rounds": args.rounds, "kinds": {}}
    for kind in [*sorted({k for k, _ in events}), "all"]:
        per: dict[str, Any] = {}
        for use in (False, True):
            rows = [x for v in runs[use].values() for x in v] if kind == "all" else runs[use][kind]
            per["on" if use else "off"] = summary(rows)
        per["ratio_mean_on_off"] = round(per["on"]["mean_ms"] / per["off"]["mean_ms"], 3)
        out["kinds"][kind] = per
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"{'kind':26} {'off mean/p50/p99 ms':>24} {'on mean/p50/p99 ms':>24} "
          f"{'reads off/on':>14} {'on/off':>7}")  # fmt: skip
    for kind, per in out["kinds"].items():
        a, b = per["off"], per["on"]
        cols = [f"{x['mean_ms']:8.1f}/{x['p50_ms']:6.1f}/{x['p99_ms']:7.1f}" for x in (a, b)]
        reads = f"{a['read_mean_ms']:6.1f}/{b['read_mean_ms']:6.1f}"
        print(f"{kind:26} {cols[0]} {cols[1]} {reads} {per['ratio_mean_on_off']:7.3f}")
    print(f"peak RSS {out['peak_rss_mib']} MiB")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
