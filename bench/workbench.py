"""Workbench benchmark: the investigator's page in Debian's chromium against a real server.

    python bench/workbench.py [--accounts 100000] [--seed 7] [--repeat 10] [--reuse]

Steps: a generated world of ``--accounts`` accounts loaded into the graph ``Settings()`` points
at (EMPTIED unless ``--reuse`` finds one with a current build), a rebuild that trains the tree
model (``explain`` needs one; no GNN, to keep the set-up short), an investigator key, and
``python -m ringscope.api serve`` (production settings) on a free loopback port. Then, in
chromium driven by Playwright:

* **time to an interactive page**, cold (a new browser context: empty cache) and warm (a
  reload in the same context): from navigation start to the moment the page's script has
  initialised (``data-app-ready``), and to the moment a signed-in page shows the work queue;
* **search to a drawn neighbourhood**: accounts whose 2-hop neighbourhood at ``limit: 200``
  fills the limit, searched one after another; the page's own timing (request sent to layout
  done) and, side by side in the same page, **the baseline**: the same ``riskNeighbourhood``
  request by ``fetch`` alone, so that ``draw / fetch`` is what drawing adds to the API's time;
* **expanding a node**: a real mouse click on a drawn identifier, to the merged graph laid out.

Peak memory: the page's JS heap (Chrome's ``Performance.getMetrics``) after all draws, and the
server process's peak RSS. Writes ``bench/results/workbench-<accounts>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from ringscope.api.auth import create_key  # noqa: E402
from ringscope.graph import Graph  # noqa: E402
from ringscope.ingest import load  # noqa: E402
from ringscope.jobs.rebuild import rebuild  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from datasets import load_world  # noqa: E402
from servers import Server  # noqa: E402

GOAL_INTERACTIVE_MS = 1500.0
GOAL_DRAW_200_MS = 500.0

# Installed before any page script: records when the page's script marks itself ready, and
# when the graph's node count changes, with performance.now() (no polling error).
MARKS = """
window.__marks = {};
new MutationObserver(() => {
  if (document.body && document.body.dataset.appReady && !window.__marks.ready)
    window.__marks.ready = performance.now();
  if (document.querySelector('[data-testid=queue-row]') && !window.__marks.queue)
    window.__marks.queue = performance.now();
}).observe(document, {subtree: true, childList: true, attributes: true});
"""

NB = """query N($kind: EntityKind!, $id: ID!) {
  riskNeighbourhood(kind: $kind, id: $id, hops: 3, limit: 200) {
  buildId truncated center { key } nodesJson edgesJson
  paths { nodes via flaggedAccount riskScore } } }"""

FETCH = """async ([key, kind, id, query]) => {
  const t0 = performance.now();
  const r = await fetch('/graphql', {method: 'POST', headers: {'content-type':
    'application/json', authorization: 'Bearer ' + key}, body: JSON.stringify({query,
    variables: {kind, id}})});
  const body = await r.json();
  const nodes = body.data.riskNeighbourhood.nodesJson;
  const target = nodes.find(n => !n.hub && n.hop === 1);
  return [performance.now() - t0, nodes.length, target ? target.key : null];
}"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p90_ms": round(pct(values, 0.9), 1),
        "max_ms": round(max(values), 1),
    }


def prepare(settings: Settings, accounts: int, seed: int, reuse: bool) -> Graph:
    def build(graph: Graph, data: Path) -> None:
        t0 = time.monotonic()
        load(data, graph, settings, progress=False)
        print(f"loaded {accounts} accounts in {time.monotonic() - t0:.0f} s", flush=True)
        t0 = time.monotonic()
        rebuild(graph, settings.model_copy(update={"model_use_gnn": False}), retrain=True)
        print(f"rebuilt (tree model trained) in {time.monotonic() - t0:.0f} s", flush=True)

    return load_world(settings, accounts, seed, reuse, build)


def big_neighbourhoods(graph: Graph, key: str, url: str, want: int) -> list[tuple[str, str]]:
    """Entities whose neighbourhood at 3 hops fills the limit of 200 nodes: the page's search
    with "3 hops" from non-hub devices, IPs and payees with many accounts. (A ring member's
    own neighbourhood is small, 15-60 nodes at 3 hops on the generated worlds, since every
    identifier of more than ``api_hub_degree`` accounts stays one unexpanded node.)"""
    import httpx

    from ringscope.kinds import KINDS

    hub = Settings().api_hub_degree
    auth = {"authorization": f"Bearer {key}"}
    per_kind = -(-want // 3)
    found: list[tuple[str, str]] = []
    for kind in KINDS:
        if kind.name not in ("device", "ip", "payee"):
            continue
        rows = graph.read(
            f"MATCH (x:{kind.label}) WITH x, COUNT {{ (x)<--() }} AS d "
            "WHERE d >= $low AND d <= $high RETURN x.id AS id ORDER BY d DESC, id LIMIT 50",
            {"low": hub // 2, "high": hub},
        )  # the label comes from the kinds table, not from input; the bounds are parameters
        mine = 0
        for r in rows:
            if mine == per_kind:
                break
            variables = {"kind": kind.name.upper(), "id": r["id"]}
            body = httpx.post(
                url, json={"query": NB, "variables": variables}, headers=auth, timeout=60
            ).json()
            nb = body["data"]["riskNeighbourhood"]
            if nb is not None and len(nb["nodesJson"]) >= 200:
                found.append((kind.name.upper(), str(r["id"])))
                mine += 1
    return found[:want]


def sign_in(page: Page, key: str) -> None:
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("signin").click()
    page.get_by_test_id("whoami").wait_for()


def interactive(browser: Any, base: str, key: str, repeat: int) -> dict[str, Any]:
    cold_ready, cold_queue, warm_ready, warm_queue = [], [], [], []
    for _ in range(repeat):
        ctx = browser.new_context()
        ctx.add_init_script(MARKS)
        page = ctx.new_page()
        page.goto(f"{base}/app")  # cold: a fresh context has an empty cache
        page.wait_for_function("() => window.__marks.ready")
        cold_ready.append(page.evaluate("window.__marks.ready"))
        sign_in(page, key)
        page.get_by_test_id("queue-row").first.wait_for()
        page.reload()  # warm: cached assets, the key in sessionStorage, so the queue loads
        page.wait_for_function("() => window.__marks.ready && window.__marks.queue")
        warm_ready.append(page.evaluate("window.__marks.ready"))
        warm_queue.append(page.evaluate("window.__marks.queue"))
        ctx.close()
        ctx = browser.new_context()  # cold with the queue: sign in on a fresh context
        ctx.add_init_script(MARKS + f"sessionStorage.setItem('ringscope.key', {json.dumps(key)});")
        page = ctx.new_page()
        page.goto(f"{base}/app")
        page.wait_for_function("() => window.__marks.queue")
        cold_queue.append(page.evaluate("window.__marks.queue"))
        ctx.close()
    return {
        "cold_script_ready": summary(cold_ready),
        "cold_queue_shown": summary(cold_queue),
        "warm_script_ready": summary(warm_ready),
        "warm_queue_shown": summary(warm_queue),
    }


def draws(browser: Any, base: str, key: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(f"{base}/app")
    sign_in(page, key)
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable")
    draw, fetch, page_fetch, expand, counts = [], [], [], [], []
    page.get_by_test_id("search-hops").select_option("3")
    for kind, eid in targets:
        page.get_by_test_id("search-kind").select_option(kind)
        page.get_by_test_id("search-id").fill(eid)
        before = page.evaluate("window.ringscope.timings.lastDrawMs")
        page.get_by_test_id("search-go").click()
        page.wait_for_function(
            "b => window.ringscope.timings.lastDrawMs !== b && "
            "document.querySelector('[data-testid=graph]').dataset.nodeCount > 0",
            arg=before,
        )
        draw.append(page.evaluate("window.ringscope.timings.lastDrawMs"))
        page_fetch.append(page.evaluate("window.ringscope.timings.lastFetchMs"))
        counts.append(len(page.evaluate("window.ringscope.nodeKeys()")))
        took, _, target = page.evaluate(FETCH, [key, kind, eid, NB])  # the baseline, same page
        fetch.append(took)
        if target is None:
            continue
        # Expand: a real click on one of the centre's identifiers (never a hub: not expanded).
        pos = page.evaluate("k => window.ringscope.renderedPosition(k)", target)
        box = page.get_by_test_id("graph").bounding_box()
        assert box is not None and pos is not None
        before = page.evaluate("window.ringscope.timings.lastExpandMs")
        page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
        page.wait_for_function(
            "b => window.ringscope.timings.lastExpandMs !== b", arg=before, timeout=60_000
        )
        expand.append(page.evaluate("window.ringscope.timings.lastExpandMs"))
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    ctx.close()
    ratios = [d / f for d, f in zip(draw, fetch, strict=True)]
    return {
        "nodes_drawn": {"min": min(counts), "max": max(counts)},
        "search_to_drawn": summary(draw),
        "of_which_the_pages_request": summary(page_fetch),
        "baseline_fetch_only": summary(fetch),
        "draw_over_fetch_ratio_median": round(statistics.median(ratios), 2),
        "expand_to_drawn": summary(expand),
        "js_heap_used_mib": round(metrics.get("JSHeapUsedSize", 0) / 2**20, 1),
        "js_heap_total_mib": round(metrics.get("JSHeapTotalSize", 0) / 2**20, 1),
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed: apt-get install chromium (or make browser)")
    settings = Settings()
    graph = prepare(settings, args.accounts, args.seed, args.reuse)
    key = create_key(graph, "investigator", "bench").key
    with Server({}) as server, sync_playwright() as p:
        base = server.url.removesuffix("/graphql")
        targets = big_neighbourhoods(graph, key, server.url, args.repeat)
        print(f"{len(targets)} searches with 200-node neighbourhoods: {targets}", flush=True)
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page_times = interactive(browser, base, key, args.repeat)
        print(json.dumps(page_times), flush=True)
        graph_times = draws(browser, base, key, targets)
        print(json.dumps(graph_times), flush=True)
        browser.close()
        server_rss = peak_rss_mib(server.proc.pid)
    result = {
        "bench": "workbench",
        "accounts": args.accounts,
        "seed": args.seed,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "chromium": chromium,
        "goals": {"interactive_ms": GOAL_INTERACTIVE_MS, "draw_200_ms": GOAL_DRAW_200_MS},
        "page": page_times,
        "graph": graph_times,
        "server_peak_rss_mib": server_rss,
    }
    out = REPO / "bench" / "results" / f"workbench-{args.accounts}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
