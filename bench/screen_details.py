"""What device and phone details (``deviceDetails``, ``phoneDetails``) cost a screen, side by side
in one process on one world.

    python bench/screen_details.py --data-dir DIR --model-dir DIR [--neo4j-port PORT]
                                   [--events 400] [--rounds 4] [--out FILE]

The world is one ``bench/screen.py`` loaded and rebuilt (``--reuse`` there; its options name it
the same way). The events: ``bench/screen.py``'s pool and mix, screened in process
(``api.service.screen_event``, no HTTP, nothing written) three ways, in turn, ``--rounds`` times
(the order rotated so that drift in the machine's speed shows in all three):

- **plain**: as the pool makes them, no details (the baseline);
- **agreeing**: every device and phone with a detail that states the flag the graph already
  holds (a fingerprint that agrees): the usual call of a risk engine that sends details. Its
  scores must equal the plain ones;
- **flipping**: every device's detail states the opposite emulator flag, so that each screen
  with a known device changes a flag and reads every neighbour whole instead of taking the
  build's feature table (``models.screen``: a flag change moves the features of every account
  on the identifier). The worst case, to size it.

Per variant: the mean Python CPU of a screen and of preparing its event, wall p50/p99, the
events that took the plain (one-value) preparation path, and the scores equal to the baseline's.
Writes JSON to ``--out``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from screen import Pool  # noqa: E402
from screen_table import pct, pool_events, rotate, world_args  # noqa: E402

FLAGS_OF: dict[str, str] = {  # kind -> the graph's flag read for the variants' details
    "device": "MATCH (x:Device {id: i}) RETURN x.id AS id, coalesce(x.is_emulator, false) AS f",
    "phone": "MATCH (x:Phone {id: i}) RETURN x.id AS id, coalesce(x.is_virtual, false) AS f",
}


def main() -> None:
    args = world_args(__doc__ or "", rounds=4, seed=23)

    from ringscope.graph import connect
    from ringscope.ingest.events import DETAIL_FIELDS, Event, prepare_events
    from ringscope.models.store import ModelStore
    from ringscope.settings import Settings

    settings = Settings()
    region = settings.default_region
    graph = connect(settings)
    pool = Pool(graph, args.seed, "det")
    plain: list[Event] = [e for _, e in pool_events(pool, args.events, "det")]
    held: dict[str, dict[str, bool]] = {}
    for kind, query in FLAGS_OF.items():
        values = sorted({v for e in plain for v in e.identifiers.get(kind, ())})
        rows = graph.read("UNWIND $ids AS i " + query, {"ids": values})  # type: ignore[arg-type]
        held[kind] = {str(r["id"]): bool(r["f"]) for r in rows}

    def detailed(e: Event, flip: bool) -> Event:
        out: dict[str, list[dict[str, str | bool | None]]] = {}
        for kind, d in DETAIL_FIELDS.items():
            for v in e.identifiers.get(kind, ()):
                flag = held[kind].get(v, False) != (flip and kind == "device")
                key, note, _ = d.table.columns
                out.setdefault(kind, []).append({key: v, note: "bench", d.flag: flag})
        return replace(e, details=out)

    variants = {
        "plain": plain,
        "agreeing": [detailed(e, False) for e in plain],
        "flipping": [detailed(e, True) for e in plain],
    }
    models = ModelStore(settings.models_dir)
    prep: dict[str, list[float]] = {k: [] for k in variants}

    def prepare(name: str, batch: list[Event]) -> None:
        t = time.process_time()
        for e in batch:
            prepare_events([e], region)
        prep[name].append(1000 * (time.process_time() - t) / len(batch))

    rot = rotate(graph, {k: (models, b) for k, b in variants.items()}, args.rounds, region,
                 after=prepare)  # fmt: skip
    cpu, walls, scores = rot.cpu, rot.walls, rot.scores
    base = statistics.mean(cpu["plain"])
    out: dict[str, Any] = {"events": len(plain), "rounds": args.rounds, "variants": {}}
    for name, batch in variants.items():
        mean = statistics.mean(cpu[name])
        out["variants"][name] = {
            "python_cpu_ms": round(mean, 3),
            "ratio_to_plain": round(mean / base, 3),
            "per_round_ms": [round(x, 3) for x in cpu[name]],
            "prepare_ms": round(statistics.mean(prep[name]), 4),
            "wall_p50_ms": round(pct(walls[name], 0.5), 2),
            "wall_p99_ms": round(pct(walls[name], 0.99), 2),
            "plain_path": sum(prepare_events([e], region).plain is not None for e in batch),
            "with_details": sum(bool(e.details) for e in batch),
            "scores_equal_to_plain": sum(
                scores[name][k] == scores["plain"][k] for k in scores["plain"]
            ),
        }
        print(name, json.dumps(out["variants"][name]))
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
