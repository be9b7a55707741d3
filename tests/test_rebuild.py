"""`ringscope rebuild` and `ringscope schedule` against the real Neo4j, run as the real CLI in
subprocesses: two rebuilds in a row, the lock, a kill at every step, verdicts written during a
rebuild, stable ring ids, and the scheduler's two cycles and clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringscope.api.auth import Principal
from ringscope.api.service import label_account
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.jobs.rebuild import STEPS, rebuild
from ringscope.models.builds import all_clusters, current_build, list_builds
from ringscope.models.screen_table import load_table
from ringscope.models.verdicts import verdict_labels
from ringscope.settings import Settings
from ringscope.synth.generate import generate
from tests.helpers import cli_env, ringscope

pytestmark = pytest.mark.neo4j

ACCOUNTS = 1_500


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rebuild-data")
    generate(root / "data", root / "truth", ACCOUNTS, 3)
    return root / "data"


@pytest.fixture
def env(neo4j_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: the test Neo4j as an external server, a private data dir."""
    return cli_env(neo4j_settings, tmp_path / "data")


@pytest.fixture
def fresh(neo4j_settings: Settings) -> Iterator[Graph]:
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        yield g


def ok(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def rings(graph: Graph) -> dict[frozenset[str], str]:
    return {frozenset(c.members): c.ring_id for c in all_clusters(graph, min_score=0.5)[1]}


def start_paused(env: dict[str, str], graph: Graph, *args: str) -> subprocess.Popen[str]:
    """A rebuild subprocess paused at its detect step; returns once its build is running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringscope", "rebuild", "--no-model", "--top", "0", *args],
        env={**env, "RINGSCOPE_REBUILD_FAILPOINT": "detect:sleep=15"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not [b for b in list_builds(graph) if b.status == "running"]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.communicate()[1][-3000:])
        time.sleep(0.3)
    return proc


def test_two_rebuilds_in_a_row_keep_ring_ids(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    ok(ringscope("rebuild", "--input", str(dataset), "--no-model", "--top", "0", env=env))
    first = current_build(fresh)
    assert first is not None and first.status == "complete"
    before = rings(fresh)
    assert before  # the sample has planted rings
    ok(ringscope("rebuild", "--no-model", "--top", "0", env=env))
    second = current_build(fresh)
    assert second is not None and second.id != first.id
    assert second.previous_build == first.id
    after = rings(fresh)
    assert after == before  # same members, same ring ids
    record = second.metrics
    assert set(record["steps"]) >= {"lock", "project", "labels", "detect", "write"}
    assert record["counts"]["accounts"] == ACCOUNTS
    assert "rebuild_detect" in second.stage_seconds


def test_retrain_then_score_only_reuses_the_model(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    res = ok(ringscope("rebuild", "--input", str(dataset), "--retrain", "--top", "0", env=env))
    first = current_build(fresh)
    assert first is not None and first.model_version
    assert first.metrics["retrained"] is True
    models = Path(env["RINGSCOPE_DATA_DIR"]) / "models"
    assert (models / "current").read_text().strip() == first.model_version
    manifest = json.loads((models / first.model_version / "manifest.json").read_text())
    assert manifest["training_build_id"] == first.id
    # Trained with label exposure (the default; docs/models.md), which the manifest records.
    assert manifest["config"]["label_exposure"] is True
    ok(ringscope("rebuild", "--score-only", "--top", "0", env=env))
    second = current_build(fresh)
    assert second is not None and second.model_version == first.model_version
    assert second.metrics["retrained"] is False
    # Each build keeps its screening feature table (models/screen_table.py) beside the models,
    # whole (no temporary folder left), for the builds the graph still holds.
    tables = sorted(p.name for p in (models / "screen").iterdir())
    assert second.id in tables and all(not t.startswith(".") for t in tables)
    assert set(tables) <= {b.id for b in list_builds(fresh)}
    assert load_table(models, second.id) is not None
    why = ok(ringscope("explain", "A0000001", "--json", env=env))
    assert json.loads(why.stdout)["model_version"] == first.model_version
    del res


def test_score_only_without_a_model_is_a_clear_error(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    res = ringscope("rebuild", "--input", str(dataset), "--score-only", env=env)
    assert res.returncode == 2
    assert "--score-only needs a trained model" in res.stderr
    assert current_build(fresh) is None
    assert [b.status for b in list_builds(fresh)] == ["failed"]


def test_a_second_rebuild_waits_for_the_lock(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    first = start_paused(env, fresh, "--input", str(dataset))
    try:
        second = ringscope("rebuild", "--no-model", env=env)
        assert second.returncode == 2
        assert "is being written by another process" in second.stderr
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert [b.status for b in list_builds(fresh)] == ["complete"]


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_leaves_the_old_build_serving(
    fresh: Graph, env: dict[str, str], dataset: Path, step: str
) -> None:
    ok(ringscope("rebuild", "--input", str(dataset), "--no-model", "--top", "0", env=env))
    old = current_build(fresh)
    assert old is not None
    served = rings(fresh)
    killed = {**env, "RINGSCOPE_REBUILD_FAILPOINT": step, "RINGSCOPE_MODEL_USE_GNN": "false"}
    args = ["rebuild", "--top", "0"]
    if step != "score":
        args.append("--no-model")  # only the score step needs the model: keep the rest quick
    if step == "ingest":
        args += ["--input", str(dataset)]
    res = ringscope(*args, env=killed)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    now = current_build(fresh)
    assert now is not None and now.id == old.id  # readers still on the old build
    assert rings(fresh) == served  # and it is untouched
    statuses = sorted(b.status for b in list_builds(fresh))
    assert statuses == (["complete"] if step == "lock" else ["complete", "running"])
    # The next rebuild notices the dead writer at once, cleans up and publishes.
    ok(ringscope("rebuild", "--no-model", "--top", "0", env=env))
    new = current_build(fresh)
    assert new is not None and new.id != old.id and new.previous_build == old.id
    assert [b for b in list_builds(fresh) if b.status != "complete"] == []
    assert rings(fresh) == served


def test_an_error_at_a_step_marks_the_build_failed(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    ok(ringscope("rebuild", "--input", str(dataset), "--no-model", "--top", "0", env=env))
    old = current_build(fresh)
    res = ringscope(
        "rebuild", "--no-model", env={**env, "RINGSCOPE_REBUILD_FAILPOINT": "write:error"}
    )
    assert res.returncode == 2 and "injected error at step 'write'" in res.stderr
    assert current_build(fresh) == old
    assert sorted(b.status for b in list_builds(fresh)) == ["complete", "failed"]


def test_verdicts_written_during_a_rebuild_survive_it(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    ok(ringscope("rebuild", "--input", str(dataset), "--no-model", "--top", "0", env=env))
    proc = start_paused(env, fresh)
    try:
        who = Principal("k-test", "investigator", "alice")
        label_account(fresh, "A0000007", "fraud", "seen in case 12", who)
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert verdict_labels(fresh)["A0000007"][0] == "fraud"
    ok(ringscope("rebuild", "--no-model", "--top", "0", env=env))
    latest = current_build(fresh)
    assert latest is not None and latest.metrics["counts"]["verdicts_applied"] >= 1
    assert verdict_labels(fresh)["A0000007"][0] == "fraud"


def test_scheduler_publishes_a_build_per_cycle(
    fresh: Graph, env: dict[str, str], dataset: Path
) -> None:
    ok(ringscope("ingest", str(dataset), env=env))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringscope", "schedule", "--every", "1s"],
        env={**env, "RINGSCOPE_MODEL_USE_GNN": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len([b for b in list_builds(fresh) if b.status == "complete"]) < 2:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["runs"] >= 2 and summary["failures"] == 0 and summary["stopped_by_signal"]
    assert [b.status for b in list_builds(fresh) if b.status != "complete"] == []
    first, second = sorted(
        (b for b in list_builds(fresh) if b.status == "complete"), key=lambda b: b.id
    )[:2]
    assert second.model_version == first.model_version  # trained once, then reused


def test_ring_soft_labels_need_cluster_scores_learned_from_the_platforms_labels(
    fresh: Graph, neo4j_settings: Settings, dataset: Path, tmp_path: Path
) -> None:
    """A model trains with ring soft labels only where the previous build's cluster scores
    were learned from this platform's labels: after a build scored by the prior (as with too
    few labelled clusters), the retrain leaves them off, its manifest says so, and the build
    says why. The ring features are still read."""
    settings = neo4j_settings.model_copy(
        update={"model_dir": tmp_path / "models", "model_use_gnn": False}
    )
    rebuild(fresh, settings.model_copy(update={"cluster_scorer": "prior"}), input_dir=dataset,
            use_model=False)  # fmt: skip
    res = rebuild(fresh, settings, retrain=True)
    counts = res.build.metrics["counts"]
    assert "the prior scorer's" in counts["ring_soft_labels"]
    assert counts["ring_prior_accounts"] > 0  # the ring features read the priors all the same
    manifest = json.loads(
        (settings.models_dir / str(res.model_version) / "manifest.json").read_text()
    )
    assert manifest["config"]["ring_prior"] is True
    assert manifest["config"]["ring_soft_labels"] is False
