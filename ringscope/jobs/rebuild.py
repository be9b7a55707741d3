"""The rebuild job: one command that refreshes everything, safely.

Steps, in order (each timed and logged; ``docs/rebuild.md``)::

    lock     take the build lock and open a ``running`` build (models.builds.BuildWriter.begin)
    ingest   load new input, when --input is given (ingest.load)
    project  read the account-identifier graph once (models.projection)
    labels   investigators' verdicts override imported labels (models.verdicts)
    score    retrain the learned model, or reuse the current one (models.risk, models.artefacts);
             a model that reads ring priors gets the current build's (models.features)
    detect   rings, clusters and account scores, using the learned scores (models.detect)
    write    clusters, memberships and scores under the running build
    screen_table  every account's feature row for screens (models.screen_table), saved
    switch   verify the build and move the readers to it in one transaction, prune old builds

In-process, the old builds the switch would prune are deleted earlier, in a background thread
from the end of ``project`` to the start of ``write`` (``BuildWriter.prune_ahead``): Neo4j is
idle while Python detects, and the deletes took 8-12 s of the switch at 1M. It stops before the
write because deleting old memberships and creating new ones lock the same accounts. The
screen table's rows are computed in another thread while the build is written (Neo4j's work,
with this process mostly waiting) and saved in their own step; at 1M they took 4.7-5.8 s of
the critical path.

The build lock is the ``running`` build itself: a second rebuild sees it (with a fresh
heartbeat, or a live process on this machine) and exits with a clear message. A rebuild that
fails at any step marks its build ``failed``; one that is killed leaves it ``running`` with a dead
process, which the next rebuild detects, marks failed and deletes. Until ``switch`` the previous
build stays current and untouched. A new model becomes current only after its build is.

Fault injection (tests): ``RINGSCOPE_REBUILD_FAILPOINT=<step>`` kills the process with SIGKILL
at the start of that step; ``<step>:error`` raises instead; ``<step>:sleep=<s>`` pauses there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ringscope.errors import RingScopeError
from ringscope.graph.connection import Graph
from ringscope.ingest import load
from ringscope.models import screen_table
from ringscope.models.builds import BuildInfo, BuildWriter, get_build, list_builds, ring_priors
from ringscope.models.detect import DetectConfig, detect
from ringscope.models.projection import read_fraud_label_times, read_projection
from ringscope.models.verdicts import apply_verdicts
from ringscope.settings import Settings

if TYPE_CHECKING:
    from ringscope.models.risk import TreeScorer

__all__ = ["STEPS", "RebuildError", "RebuildResult", "rebuild"]

log = logging.getLogger("ringscope.rebuild")

STEPS = (
    "lock",
    "ingest",
    "project",
    "labels",
    "score",
    "detect",
    "write",
    "screen_table",
    "switch",
)
Policy = Literal["auto", "retrain", "score-only", "none"]


class RebuildError(RingScopeError):
    """A rebuild could not run or finish."""


@dataclass
class RebuildResult:
    build: BuildInfo
    model_version: str | None
    retrained: bool
    steps: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    model_metrics: dict[str, Any] = field(default_factory=dict)


def _failpoint(step: str) -> None:
    spec = os.environ.get("RINGSCOPE_REBUILD_FAILPOINT", "")
    name, _, action = spec.partition(":")
    if name != step:
        return
    if action == "error":
        raise RebuildError(f"failpoint: injected error at step {step!r}")
    if action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))
        return
    log.warning("failpoint: killing the rebuild at step %s", step)
    os.kill(os.getpid(), signal.SIGKILL)


class _Heartbeat:
    """Keeps the running build's heartbeat fresh while a long step (ingest, training) runs."""

    def __init__(self, writer: BuildWriter, every: float = 20.0) -> None:
        self.writer = writer
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rebuild-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.writer.heartbeat(force=True)
            except Exception:  # the main thread finds out at its next write
                log.exception("heartbeat failed")
                return

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class _PruneAhead:
    """Old builds deleted in a background thread while the detector computes
    (``BuildWriter.prune_ahead``); joined before the build is written. A failure is logged and
    left to the switch's own pruning."""

    def __init__(self, writer: BuildWriter, keep: int) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(writer, keep), name="rebuild-prune", daemon=True
        )

    @staticmethod
    def _run(writer: BuildWriter, keep: int) -> None:
        try:
            deleted = writer.prune_ahead(keep)
        except Exception:
            log.exception("pruning old builds ahead of the switch failed")
            return
        if deleted:
            log.info("old builds pruned", extra={"builds": deleted})

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        if self.thread.ident is not None:  # started
            self.thread.join()


def _policy(retrain: bool, score_only: bool, use_model: bool) -> Policy:
    if retrain and score_only:
        raise RebuildError("--retrain and --score-only exclude each other")
    if not use_model:
        return "none"
    return "retrain" if retrain else "score-only" if score_only else "auto"


def rebuild(
    graph: Graph,
    settings: Settings,
    *,
    input_dir: Path | None = None,
    retrain: bool = False,
    score_only: bool = False,
    use_model: bool = True,
    progress: Callable[[str, str], None] | None = None,
    engine: Literal["in-process", "spark"] | None = None,
    load_input: bool = True,
) -> RebuildResult:
    """Run every step; on any failure the previous build keeps serving (see the module doc).

    ``engine`` (default ``settings.rebuild_engine``): ``spark`` detects from the input files
    on Spark (``ringscope.spark``; it needs ``input_dir``, which is also loaded into Neo4j, the
    serving store, unless ``load_input`` is false: input already loaded, e.g. by
    ``ingest --bulk``) and scores accounts with the current saved model's tree (it trains
    none; without a current model its build is rings only, and the build says so)."""
    # torch, torch-geometric and lightgbm (the learned model): seconds of import that a
    # rings-only rebuild, and every other command importing this module, does without.
    from ringscope.models import artefacts
    from ringscope.models.risk import AccountRiskModel

    engine = engine or settings.rebuild_engine
    if engine == "spark":
        if input_dir is None:
            raise RebuildError(
                "The Spark engine reads the input files, not Neo4j: give --input DIR (the "
                "directory the loader reads; it is loaded into Neo4j too, which serves the build)"
            )
        if retrain:
            raise RebuildError(
                "The Spark engine scores with the saved account model and does not train one: "
                "train it in-process (ringscope rebuild --retrain, on the whole graph or a "
                "sample that fits one machine), then rebuild on Spark"
            )
    policy = _policy(retrain, score_only, use_model)
    steps: dict[str, float] = {}
    counts: dict[str, Any] = {}
    say = progress or (lambda step, msg: None)

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        _failpoint(name)
        say(name, "start")
        log.info("step started", extra={"step": name})
        t = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - t, 3)
        say(name, f"done in {steps[name]:.1f} s")
        log.info("step finished", extra={"step": name, "seconds": steps[name]})

    # detect() below runs with this config: its flag threshold goes on the build.
    config = DetectConfig(
        cluster_scorer=settings.cluster_scorer,
        cluster_prior=settings.cluster_prior,
        cluster_min_positives=settings.cluster_min_positives,
        trim_attached=settings.detect_trim_attached,
        coactivation_weight=(
            DetectConfig().coactivation_weight if settings.detect_coactivation else 0.0
        ),
        fresh_weight=DetectConfig().fresh_weight if settings.detect_onboarding else 0.0,
        reassemble_share=DetectConfig().reassemble_share if settings.detect_reassemble else 0.0,
    )
    writer = BuildWriter(
        graph,
        stale_after=settings.rebuild_stale_after_s,
        flag_threshold=config.flag_threshold,
    )
    with step("lock"):
        build_id = writer.begin()
    counts["build_id"] = build_id
    log.info("build opened", extra={"build_id": build_id, "previous": writer.previous_build})
    pruning = _PruneAhead(writer, settings.rebuild_keep_builds)
    model_path: Path | None = None
    version: str | None = None
    retrained = False
    model_metrics: dict[str, Any] = {}
    try:
        with _Heartbeat(writer):
            if input_dir is not None and load_input:
                with step("ingest"):
                    report = load(input_dir, graph, settings, progress=False)
                counts["ingest"] = {
                    "rows_read": report.rows_read,
                    "rows_loaded": report.rows_loaded,
                    "rows_quarantined": report.rows_quarantined,
                    "report_dir": report.report_dir,
                }
            if engine == "spark":
                assert input_dir is not None
                version = _spark_steps(
                    graph, settings, input_dir, config, writer, step, counts, policy
                )
            else:
                since_ms = screen_table.read_since(graph, settings)
                with step("project"):
                    proj = read_projection(graph)
                counts["accounts"] = proj.n
                counts["nodes_numbered"] = proj.numbered
                counts["numbering_s"] = round(proj.seconds.get("numbering", 0.0), 3)
                counts["identifier_edges"] = int(sum(len(e.acc) for e in proj.kinds.values()))
                counts["data_now"] = proj.now()  # what explanations of this build measure age from
                # Neo4j is idle from here to the write: the old builds go meanwhile.
                pruning.start()
                with step("labels"):
                    applied = apply_verdicts(graph, proj)
                counts["verdicts_applied"] = applied
                counts["labels_fraud"] = int((proj.label == 1).sum())
                counts["labels_legit"] = int((proj.label == 0).sum())
                scores: dict[str, float] | None = None
                if policy != "none":
                    with step("score"):
                        current = artefacts.current_model(settings.models_dir)
                        model: AccountRiskModel | None = None
                        if policy != "retrain" and current is not None:
                            try:
                                model = artefacts.load_model(current)
                                version = model.version
                            except artefacts.ModelSchemaError:
                                if policy == "score-only":
                                    raise
                                log.warning("current model has another feature schema: retraining")
                        if model is None and policy == "score-only":
                            raise RebuildError(
                                "--score-only needs a trained model, and none is current in "
                                f"{settings.models_dir}; run with --retrain"
                            )
                        # Soft labels only for a model trained here, and only on cluster
                        # scores learned from this platform's labels (one read of that build).
                        soft = (
                            model is None and settings.model_ring_soft_labels
                            and _learned_rings(graph, writer.previous_build, counts)
                        )  # fmt: skip
                        reads_rings = (
                            model.config.ring_prior if model is not None
                            else settings.model_ring_prior or soft
                        )  # fmt: skip
                        if reads_rings and writer.previous_build is not None:
                            # The ring prior (models.features.ring_features): the current
                            # build's label-free cluster scores (pruning keeps that build).
                            priors = ring_priors(graph, writer.previous_build)
                            proj.ring = np.asarray(
                                [priors.get(a, 0.0) for a in proj.ids], dtype=np.float64
                            )
                            counts["ring_prior_accounts"] = len(priors)
                        if model is None:
                            model = AccountRiskModel(
                                seed=settings.model_seed,
                                use_gnn=settings.model_use_gnn,
                                threads=settings.model_threads,
                                label_exposure=settings.model_label_exposure,
                                label_frequency=settings.model_label_frequency,
                                ring_prior=settings.model_ring_prior,
                                ring_soft_labels=soft,
                                gnn={
                                    "max_seconds": settings.model_gnn_max_seconds or None,
                                    "min_epochs": settings.model_gnn_min_epochs,
                                    "device": settings.model_device,
                                },
                            ).fit(
                                proj,
                                read_fraud_label_times(graph)
                                if settings.model_label_exposure
                                else None,
                            )
                            version = artefacts.new_model_version()
                            model_path = settings.models_dir / version
                            artefacts.save_model(
                                model, model_path, version=version, build_id=build_id
                            )
                            retrained = True
                        probs = model.predict_proba(proj)
                        scores = dict(zip(proj.ids, np.round(probs, 6).tolist(), strict=True))
                        model_metrics = dict(model.metrics)
                    writer.model_version = version
                # The previous build's rings, for ring ids, read while Python detects.
                writer.prefetch_previous_rings()
                with step("detect"):
                    detection = detect(
                        graph, config=config, projection=proj, account_model_scores=scores
                    )
                counts["clusters"] = len(detection.clusters)
                counts["cluster_scorer"] = detection.scorer
                pruning.join()
                with ThreadPoolExecutor(1, thread_name_prefix="rebuild-table") as pool:
                    # Every account's feature row, for screens (models/screen_table.py): computed
                    # from the projection while the write waits on Neo4j, saved whole before
                    # the switch, so a current build always has its table.
                    table = (
                        pool.submit(
                            screen_table.build_table,
                            proj,
                            build_id,
                            since_ms,
                            partial(screen_table.read_node_ids, graph),
                        )
                        if settings.screen_table
                        else None
                    )
                    with step("write"):
                        writer.write(detection, scores)
                    if table is not None:
                        with step("screen_table"):
                            screen_table.save_table(table.result(), settings.models_dir)
        _failpoint("switch")
        t = time.perf_counter()
        say("switch", "start")
        writer.stage_seconds.update({f"rebuild_{k}": v for k, v in steps.items()})
        record = {
            "steps": steps,
            "counts": counts,
            "input": str(input_dir) if input_dir else None,
            "model_version": version,
            "retrained": retrained,
            "model": model_metrics,
            "policy": policy,
            "engine": engine,
        }
        info = writer.finish(metrics=record, keep=settings.rebuild_keep_builds)
        screen_table.prune_tables(settings.models_dir, [b.id for b in list_builds(graph)])
        steps["switch"] = round(time.perf_counter() - t, 3)
        say("switch", f"done in {steps['switch']:.1f} s")
    except BaseException as exc:
        pruning.join()
        writer.fail(f"{type(exc).__name__}: {exc}")
        if model_path is not None:  # a model whose build never became current is not kept
            shutil.rmtree(model_path, ignore_errors=True)
        log.error("rebuild failed", extra={"build_id": build_id, "error": str(exc)})
        raise
    if retrained and version is not None:
        artefacts.set_current_model(settings.models_dir, version)
    log.info("rebuild finished", extra={"build_id": info.id, "steps": steps})
    return RebuildResult(info, version, retrained, steps, counts, model_metrics)


def _learned_rings(graph: Graph, previous: str | None, counts: dict[str, Any]) -> bool:
    """Whether the previous build's cluster scores were learned from this platform's labels,
    the condition for training with ring soft labels (``models.risk.ring_soft_labels``): with
    too few labelled clusters the scorer falls back to its prior (the generated worlds' or the
    hand-set weights), whose probabilities would teach the account model a view no label of
    this platform backs. Otherwise the build says why they were off (``counts``)."""
    if previous is None:
        return False  # no build, no priors: nothing to soften
    info = get_build(graph, previous)
    scorer = ((info.metrics.get("counts") or {}).get("cluster_scorer") if info else None) or {}
    source = scorer.get("source") if isinstance(scorer, dict) else None
    if source == "learned":
        return True
    counts["ring_soft_labels"] = (
        f"off: build {previous}'s cluster scores are the {source or 'unknown'} scorer's, not "
        "learned from this platform's labels"
    )
    return False


def _spark_model(settings: Settings, policy: Policy) -> tuple[TreeScorer | None, Any]:
    """The current saved model's tree for a Spark build, and what the build records about the
    account model. ``auto`` falls back to rings only (said on the build) where ``score-only``
    refuses: no current model, another feature schema, or a tree without its own calibration."""
    from ringscope.models import artefacts

    if policy == "none":
        return None, {"scored_with": "none", "why": "--no-model"}
    current = artefacts.current_model(settings.models_dir)
    why = None
    if current is None:
        why = (
            f"no current model in {settings.models_dir}: an in-process rebuild trains one "
            "(ringscope rebuild --retrain)"
        )
    else:
        try:
            model = artefacts.load_model(current)
            scorer = model.tree_scorer()
        except (artefacts.ModelSchemaError, ValueError) as exc:
            why = str(exc)
        else:
            gnn = (
                "none in the model"
                if model.choice == "tree"
                else f"the model chose the {model.choice}; its GNN does not run on Spark, its "
                "tree scores with the tree's own calibration"
            )
            return scorer, {
                "scored_with": "tree",
                "version": model.version,
                "ring_prior": model.config.ring_prior,
                "gnn": gnn,
                "platt": list(scorer.platt),
                "hub_degree": scorer.hub_degree,
            }
    if policy == "score-only":
        raise RebuildError(f"--score-only needs a usable current model: {why}")
    log.warning("spark rebuild without the account model", extra={"why": why})
    return None, {"scored_with": "none", "why": why}


def _spark_steps(
    graph: Graph,
    settings: Settings,
    input_dir: Path,
    config: DetectConfig,
    writer: BuildWriter,
    step: Callable[[str], contextlib.AbstractContextManager[None]],
    counts: dict[str, Any],
    policy: Policy,
) -> str | None:
    """labels, detect and write on Spark (``ringscope.spark``): the tables are read from the
    input files with the loader's own rules, verdicts override labels as in-process, the saved
    model's tree scores the accounts, and the executors write the score chunks
    (``spark.build``). Returns the version of the model that scored, if one did."""
    from ringscope.models.verdicts import verdict_labels
    from ringscope.spark.build import write_score_chunks
    from ringscope.spark.engine import detect_spark
    from ringscope.spark.session import spark_session
    from ringscope.spark.tables import read_tables

    with step("labels"):
        verdicts = {a: 1 if lab == "fraud" else 0 for a, (lab, _) in verdict_labels(graph).items()}
    counts["verdicts_applied"] = len(verdicts)
    scorer, about = _spark_model(settings, policy)
    counts["account_model"] = about
    version: str | None = about.get("version")
    writer.model_version = version
    rings = None
    if about.get("ring_prior") and writer.previous_build is not None:
        with step("ring_priors"):  # what the in-process rebuild reads (models.features)
            rings = ring_priors(graph, writer.previous_build)
        counts["ring_prior_accounts"] = len(rings)
    spark = spark_session(settings)
    try:
        with step("detect"):
            tables = read_tables(spark, input_dir, settings)
            detection = detect_spark(
                spark, tables, config, verdicts=verdicts, model=scorer, rings=rings
            )
        counts.update(detection.counts)
        counts["cluster_scorer"] = detection.scorer
        counts["spark"] = {"master": settings.spark_master, "steps": detection.stage_seconds}
        with step("write"):
            writer.write_clusters(detection.clusters, detection.member_scores)
            write_score_chunks(detection.scores, writer, settings)
            writer.stage_seconds.update(
                {f"detect_{k}": float(v) for k, v in detection.stage_seconds.items()}
            )
    except RingScopeError:
        raise
    except Exception as exc:  # py4j's and Spark's errors: one line for the user, the trace logged
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        log.exception("spark job failed")
        raise RebuildError(f"The Spark job failed: {first}") from exc
    finally:
        spark.stop()
    return version
