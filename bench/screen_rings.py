"""What reading the neighbours' ring priors costs a screen, side by side in one process on one
world.

    python bench/screen_rings.py --data-dir DIR --model-dir DIR [--neo4j-port PORT]
                                 [--events 400] [--rounds 4] [--out FILE]

A model trained with the ring features (``RINGSCOPE_MODEL_RING_PRIOR``, and the ring soft
labels that make them pay: docs/screening.md, session 37) makes every screen read, for each
account in the event's neighbourhood, the largest label-free score of the current build's
clusters holding it (``graph.cypher._screen_ring``), and compute the two ring features. This
bench sizes that read and nothing else: the world's current model (trained without them) is
screened as it is (**plain**, the baseline) and as a copy that reads them (**ring-read**:
``config.ring_prior`` set; its trees never split on them, so its scores stay the plain ones,
which the bench checks). The events: ``bench/screen.py``'s pool and mix, screened in process
(``api.service.screen_event``, no HTTP, nothing written), the two variants alternated
``--rounds`` times so that drift in the machine's speed shows in both.

Per variant: the mean CPU a screen of Python (this process) and of Neo4j (its process, where the
launcher runs it here), wall p50/p99, and the scores equal to the baseline's. Writes JSON to
``--out``.
"""

from __future__ import annotations

import copy
import json
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from screen import Pool  # noqa: E402
from screen_table import pct, pool_events, rotate, world_args  # noqa: E402


def main() -> None:
    args = world_args(__doc__ or "", rounds=4, seed=29)

    from ringscope.graph import EmbeddedNeo4j, connect
    from ringscope.ingest.events import Event
    from ringscope.models.risk import AccountRiskModel
    from ringscope.models.store import ModelStore
    from ringscope.settings import Settings

    class RingRead(ModelStore):
        """The store's current model, as a copy that reads the ring priors."""

        def current(self) -> AccountRiskModel:
            model = super().current()
            if getattr(self, "_copy_of", None) is not model:
                self._copy_of, self._copy = model, copy.deepcopy(model)
                self._copy.config.ring_prior = True
            return self._copy

    settings = Settings()
    region = settings.default_region
    graph = connect(settings)
    neo4j = None if settings.neo4j_uri else EmbeddedNeo4j(settings).status()
    pids = [neo4j.pid] if neo4j is not None and neo4j.pid else []
    pool = Pool(graph, args.seed, "rings")
    events: list[Event] = [e for _, e in pool_events(pool, args.events, "rings")]
    stores = {"plain": ModelStore(settings.models_dir), "ring-read": RingRead(settings.models_dir)}
    rot = rotate(graph, {k: (m, events) for k, m in stores.items()}, args.rounds, region, pids)
    cpu, db, walls, scores = rot.cpu, rot.db, rot.walls, rot.scores
    out: dict[str, Any] = {"events": len(events), "rounds": args.rounds, "variants": {}}
    for name in stores:
        out["variants"][name] = {
            "python_cpu_ms": round(statistics.mean(cpu[name]), 3),
            "neo4j_cpu_ms": round(statistics.mean(db[name]), 3) if pids else None,
            "per_round_python_ms": [round(x, 3) for x in cpu[name]],
            "per_round_neo4j_ms": [round(x, 3) for x in db[name]],
            "wall_p50_ms": round(pct(walls[name], 0.5), 2),
            "wall_p99_ms": round(pct(walls[name], 0.99), 2),
            "scores_equal_to_plain": sum(
                scores[name][k] == scores["plain"][k] for k in scores["plain"]
            ),
        }
        print(name, json.dumps(out["variants"][name]))
    base = out["variants"]["plain"]
    ring = out["variants"]["ring-read"]
    out["ratio"] = {
        k: round(ring[k] / base[k], 3) for k in ("python_cpu_ms", "neo4j_cpu_ms") if base[k]
    }
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("ratio ring-read / plain:", out["ratio"])
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
