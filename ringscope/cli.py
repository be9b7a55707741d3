"""The ``ringscope`` command line. Each command is a thin shell over one package's public API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from ringscope.api.app import serve as run_server
from ringscope.api.auth import create_key
from ringscope.api.cli import apikey_cli, audit_cli, query_cli, schema, serve
from ringscope.errors import RingScopeError
from ringscope.graph import EmbeddedNeo4j, Graph, connect, counts, init_schema
from ringscope.graph.embedded import build_launcher, check_java
from ringscope.ingest import load
from ringscope.ingest.loader import unexpected_failure
from ringscope.jobs.rebuild import rebuild
from ringscope.jobs.schedule import configure_logging, parse_schedule, run_schedule
from ringscope.models.builds import ClusterInfo, clusters
from ringscope.models.detect import DetectConfig
from ringscope.models.explain import explain
from ringscope.models.store import ModelStore
from ringscope.settings import Settings
from ringscope.synth.generate import WorldParams, generate

err = Console(stderr=True)
out = Console()

cli = typer.Typer(help="RingScope: graph-based fraud ring detection.", no_args_is_help=True)
neo4j_cli = typer.Typer(help="The embedded Neo4j (ignored when NEO4J_URI is set).")
graph_cli = typer.Typer(help="The graph schema and contents.")
cli.add_typer(neo4j_cli, name="neo4j")
cli.add_typer(graph_cli, name="graph")
cli.command("serve")(serve)
cli.command("schema")(schema)
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(query_cli, name="query")
cli.add_typer(audit_cli, name="audit")
bench_cli = typer.Typer(help="Benchmarks against published work.")
cli.add_typer(bench_cli, name="bench")


@neo4j_cli.command("start")
def neo4j_start(
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Also serve Neo4j Browser on 127.0.0.1:RINGSCOPE_NEO4J_HTTP_PORT (default 7474), "
            "through Neo4j's HTTP connector; loopback only.",
        ),
    ] = False,
) -> None:
    """Start the embedded Neo4j (or find the running one) and print its Bolt URI."""
    settings = Settings()
    if settings.neo4j_uri:
        err.print(f"NEO4J_URI is set ({settings.neo4j_uri}): nothing to start.")
        return
    t0 = time.monotonic()
    embedded = EmbeddedNeo4j(settings)
    instance, started = embedded.start(browser=browser)
    if started:
        err.print(f"Neo4j started in {time.monotonic() - t0:.1f} s (pid {instance.pid}).")
    else:
        err.print(f"Neo4j already running (pid {instance.pid}).")
    if instance.browser_url is not None:
        # The password is not printed: terminals get scrolled back and screen-shared.
        err.print(
            f"Neo4j Browser (this machine only): {instance.browser_url}\n"
            f"Log in as neo4j with the password in {embedded.password_file}.",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    print(instance.uri)


@neo4j_cli.command("build")
def neo4j_build() -> None:
    """Resolve Neo4j from Maven Central and compile the launcher (done by `start` if needed)."""
    settings = Settings()
    check_java(settings.java)
    t0 = time.monotonic()
    classpath = build_launcher(settings)
    err.print(f"Launcher ready in {time.monotonic() - t0:.1f} s ({classpath.count(':') + 1} jars).")


@neo4j_cli.command("stop")
def neo4j_stop() -> None:
    """Stop the embedded Neo4j cleanly; its data stays for the next start."""
    if EmbeddedNeo4j(Settings()).stop():
        err.print("Neo4j stopped.")
    else:
        err.print("Neo4j was not running.")


@neo4j_cli.command("status")
def neo4j_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
) -> None:
    """Say whether the embedded Neo4j runs, where, and how to reach it. Exit 1 if it does not."""
    settings = Settings()
    embedded = EmbeddedNeo4j(settings)
    instance = None if settings.neo4j_uri else embedded.status()
    if settings.neo4j_uri:
        report: dict[str, object] = {
            "running": None,
            "embedded": False,
            "uri": settings.neo4j_uri,
            "user": settings.neo4j_user,
            "password": None,
            "pid": None,
            "data_dir": None,
            "log_file": None,
            "browser_url": None,
        }
    elif instance is None:
        report = {
            "running": False,
            "embedded": True,
            "uri": None,
            "user": "neo4j",
            "password": None,
            "pid": None,
            "data_dir": str(embedded.root),
            "log_file": str(embedded.log_file),
            "browser_url": None,
        }
    else:
        report = {"running": True, "embedded": True, **instance.to_json()}
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if key != "password":
                print(f"{key:>11}: {value}")
    if report["running"] is False:
        raise typer.Exit(1)


@graph_cli.command("init")
def graph_init() -> None:
    """Create the constraints and indexes (idempotent)."""
    with connect(Settings()) as graph:
        names = init_schema(graph)
    err.print(f"Schema ready: {len(names)} constraints.")
    for name in names:
        print(name)


@graph_cli.command("counts")
def graph_counts() -> None:
    """Print node counts by label and relationship counts by type."""
    with connect(Settings()) as graph:
        _print_counts(graph)


def _print_counts(graph: Graph) -> None:
    nodes, rels = counts(graph)
    table = Table("kind", "name", "count")
    for label, n in nodes.items():
        table.add_row("node", label, f"{n:,}")
    for rel, n in rels.items():
        table.add_row("relationship", rel, f"{n:,}")
    out.print(table)


@cli.command("generate")
def generate_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the data set goes.")],
    truth: Annotated[
        Path | None, typer.Option(help="Where the ground truth goes (default: OUT/../truth).")
    ] = None,
    accounts: Annotated[int, typer.Option(min=100)] = 10_000,
    seed: Annotated[int, typer.Option()] = 42,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    world: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="A world seed: draw the world's mechanics (household sizes, label delays, "
            "ring timing, ...) from it; absent: the default world. Seeds 1-99 are for "
            "development, 100 and up are held out for reporting.",
        ),
    ] = None,
) -> None:
    """Write a realistic data set with planted rings (and its ground truth, separately)."""
    truth_dir = truth or out_dir.parent / "truth"
    t0 = time.monotonic()
    written = generate(
        out_dir, truth_dir, accounts, seed, fmt=fmt, default_region=Settings().default_region,
        world=None if world is None else WorldParams.draw(world),
    )  # fmt: skip
    table = Table("table", "rows", title=f"Generated in {time.monotonic() - t0:.1f} s")
    for name, n in written.items():
        table.add_row(name, f"{n:,}")
    out.print(table)
    err.print(f"data: {out_dir}  truth: {truth_dir}")


@cli.command("ingest")
def ingest_cmd(
    directory: Annotated[Path, typer.Argument(help="A data set directory (the data contract).")],
    mapping: Annotated[
        Path | None, typer.Option(help="A mapping file for a foreign schema (YAML or TOML).")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where report.json and the quarantine file go.")
    ] = None,
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="Initial load into the empty embedded Neo4j through its offline importer "
            "(stops and restarts it); much faster than transactional writes.",
        ),
    ] = False,
) -> None:
    """Load a data set into Neo4j: validated, normalised, idempotent, bad rows quarantined."""
    settings = Settings()
    if bulk and not settings.neo4j_uri and EmbeddedNeo4j(settings).discard_interrupted_import():
        err.print("dropped the incomplete store of an interrupted bulk import")
    try:
        with connect(settings) as graph:
            report = load(directory, graph, settings, report_dir=report_dir, mapping=mapping,
                          bulk=bulk)  # fmt: skip
    except RingScopeError:
        raise
    except Exception as exc:  # no traceback on the terminal: one line, the trace in a log file
        log_dir = report_dir or Path(settings.data_dir) / "ingest-runs"
        raise unexpected_failure(exc, log_dir) from exc
    report.render(out)


DEMO_QUERY = """query {
  riskNeighbourhood(kind: ACCOUNT, id: "ACCOUNT_ID", hops: 2, limit: 50) {
    center { id riskScore flagged }
    nodes { kind id hub degree riskScore flagged }
    edges { source target kind count firstSeen lastSeen }
    paths { nodes via flaggedAccount riskScore }
  }
  explain(accountId: "ACCOUNT_ID") {
    score model
    topFeatures { meaning value contribution }
    identifiers { kind id scoreDrop }
  }
}"""


def _print_clusters(clusters: list[ClusterInfo], title: str) -> None:
    table = Table("ring", "score", "size", "reasons", title=title, show_lines=True)
    for c in clusters:
        table.add_row(c.ring_id, f"{c.score:.2f}", str(c.size), "\n".join(c.reasons))
    out.print(table)


@cli.command("detect")
def detect_cmd(
    top: Annotated[int, typer.Option(help="How many top clusters to print.")] = 10,
) -> None:
    """Rings only: `ringscope rebuild --no-model` (no ingest, no learned scores)."""
    configure_logging()
    _rebuild_once(Settings(), None, False, False, False, top)


@cli.command("evaluate")
def evaluate_cmd(
    truth: Annotated[Path, typer.Option(help="The generator's ground-truth directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    threshold: Annotated[
        float | None, typer.Option(help="Score at which a cluster is flagged (detector's default).")
    ] = None,
) -> None:
    """Compare the current build with the ground truth: ring recall, precision, benign FPR, AUC."""
    # scikit-learn's metrics: about a second of import that only evaluate needs.
    from ringscope.models.evaluate import evaluate

    if threshold is None:
        threshold = DetectConfig().flag_threshold

    with connect(Settings()) as graph:
        result = evaluate(graph, truth, flag_threshold=threshold)
    if as_json:
        print(result.to_json())
    else:
        out.print(result.render())


def _rebuild_once(
    settings: Settings,
    input_dir: Path | None,
    retrain: bool,
    score_only: bool,
    use_model: bool,
    top: int,
    load: bool = True,
) -> None:
    def progress(step: str, msg: str) -> None:
        if sys.stderr.isatty():
            err.print(f"[bold]{step:>8}[/bold] {msg}")

    with connect(settings) as graph:
        result = rebuild(
            graph,
            settings,
            input_dir=input_dir,
            retrain=retrain,
            score_only=score_only,
            use_model=use_model,
            progress=progress,
            load_input=load,
        )
        info = result.build
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.steps.items())
        model = result.model_version or "none"
        if result.retrained:
            model += f" (retrained; chose {result.model_metrics.get('chosen')})"
        err.print(
            f"build {info.id}: {info.clusters:,} clusters, {info.accounts_scored:,} accounts "
            f"scored; model {model} ({steps})"
        )
        if top:
            page = clusters(graph, info.id, min_score=0.0, first=top)
            _print_clusters(list(page.items), f"Top {top} clusters of build {info.id}")


@cli.command("rebuild")
def rebuild_cmd(
    input_dir: Annotated[
        Path | None, typer.Option("--input", help="New input to load first (a data set dir).")
    ] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="Always retrain the model.")] = False,
    score_only: Annotated[
        bool, typer.Option("--score-only", help="Reuse the current model; never retrain.")
    ] = False,
    use_model: Annotated[
        bool, typer.Option("--model/--no-model", help="Score accounts with the learned model.")
    ] = True,
    top: Annotated[int, typer.Option(help="How many top clusters to print.")] = 10,
    engine: Annotated[
        str | None,
        typer.Option(
            help="in-process (default) or spark: detect from the --input files on Spark "
            "(RINGSCOPE_SPARK_MASTER), accounts scored by the current model's tree. "
            "Default: RINGSCOPE_REBUILD_ENGINE."
        ),
    ] = None,
    load: Annotated[
        bool,
        typer.Option(
            "--load/--no-load",
            help="Load --input into Neo4j first (default); --no-load: it is loaded already "
            "(e.g. by ingest --bulk) and only the Spark engine reads it.",
        ),
    ] = True,
) -> None:
    """Refresh everything as one new build: load, project, score, detect, write, switch."""
    configure_logging()
    settings = Settings()
    if engine is not None:
        if engine not in ("in-process", "spark"):
            raise typer.BadParameter(f"unknown engine {engine!r}: in-process or spark")
        settings = settings.model_copy(update={"rebuild_engine": engine})
    _rebuild_once(settings, input_dir, retrain, score_only, use_model, top, load)


@cli.command("schedule")
def schedule_cmd(
    every: Annotated[str | None, typer.Option(help="Interval, e.g. 90s, 15m, 1h, 1d.")] = None,
    cron: Annotated[str | None, typer.Option(help="A 5-field cron expression (UTC).")] = None,
    input_dir: Annotated[
        Path | None, typer.Option("--input", help="Input loaded at every run (idempotent).")
    ] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="Retrain at every run.")] = False,
    score_only: Annotated[bool, typer.Option("--score-only", help="Never retrain.")] = False,
    max_runs: Annotated[int | None, typer.Option(help="Stop after this many runs.")] = None,
    run_now: Annotated[
        bool, typer.Option("--now/--no-now", help="Run once at start, then on the schedule.")
    ] = True,
) -> None:
    """Run rebuilds periodically in the foreground; SIGTERM or Ctrl-C stops after the current
    run finishes. A failed run is logged and the schedule goes on."""
    configure_logging()
    sched = parse_schedule(every, cron)
    settings = Settings()
    summary = run_schedule(
        lambda: _rebuild_once(settings, input_dir, retrain, score_only, True, 0),
        sched,
        max_runs=max_runs,
        run_now=run_now,
    )
    print(json.dumps(summary.to_dict()))


@cli.command("explain")
def explain_cmd(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    top: Annotated[int, typer.Option(help="How many features and identifiers.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Why the current model scores an account as it does: top features and identifiers."""
    settings = Settings()
    with connect(settings) as graph:
        why = explain(
            graph,
            ModelStore(settings.models_dir),
            account_id,
            top=top,
            budget=settings.api_explain_expand_max,
        )
    if why is None:
        raise RingScopeError(f"account {account_id!r} is not in the graph")
    features = [
        {"feature": f, "value": v, "contribution": c, "meaning": d}
        for f, v, c, d in why.top_features
    ]
    idents = [{"kind": i.kind, "id": i.id, "score_drop": i.score_drop} for i in why.identifiers]
    doc = {
        "account_id": why.account_id,
        "score": why.score,
        "model": why.model,
        "model_version": why.model_version,
        "build_id": why.build_id,
        "accounts_read": why.accounts_read,
        "approximate": why.approximate,
        "top_features": features,
        "identifiers": idents,
    }
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    out.print(f"{why.account_id}: risk {why.score:.3f} ({why.model} model {why.model_version})")
    for f in features:
        out.print(f"  + {f['meaning']} = {f['value']} (contribution {f['contribution']:+.2f})")
    for i in idents:
        out.print(f"  {i['kind']} {i['id']}: removing it lowers the score by {i['score_drop']:.3f}")


@bench_cli.command("gad")
def bench_gad_cmd(
    dataset: Annotated[str, typer.Option(help="tolokers or reddit.")],
    setting: Annotated[str, typer.Option(help="full, semi or both.")] = "both",
    trials: Annotated[int, typer.Option(min=1, help="Trials (splits) per setting.")] = 5,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per setting.")] = False,
) -> None:
    """GADBench protocol on a published fraud graph: our GNN, our tree model and RF-Graph."""
    # torch and torch-geometric (the GAD harness): seconds of import no other command needs.
    from ringscope.models.gad import render_table, run_gad

    settings_ = ["full", "semi"] if setting == "both" else [setting]
    for s in settings_:
        result = run_gad(dataset, s, models.split(",") if models else None, trials, None)
        if as_json:
            print(json.dumps(result))
        else:
            out.print(render_table(result))


@cli.command("demo")
def demo_cmd(
    accounts: Annotated[int, typer.Option(min=100, help="Size of the generated sample.")] = 50_000,
    seed: Annotated[int, typer.Option()] = 7,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API at the end (Ctrl-C stops).")
    ] = True,
) -> None:
    """The main job, end to end: Neo4j up, a sample generated and loaded, a rebuild (rings and
    the learned model) published as a build, evaluated against the planted truth, API served."""
    settings = Settings()
    t0 = time.monotonic()
    err.rule("1. Neo4j")
    with connect(settings) as graph:
        init_schema(graph)
        address = graph.driver.get_server_info().address
        err.print(f"connected to {address} in {time.monotonic() - t0:.1f} s")

        err.rule(f"2. Generate {accounts:,} accounts with planted rings (seed {seed})")
        root = settings.data_dir / "demo" / f"{accounts}-{seed}"
        data, truth = root / "data", root / "truth"
        if (truth / "manifest.json").exists():
            err.print(f"reusing {data}")
        else:
            generate(data, truth, accounts, seed, default_region=settings.default_region)
            err.print(f"wrote {data} (ground truth in {truth})")

        err.rule("3. Ingest")
        report = load(data, graph, settings)
        report.render(out)

        err.rule("4. Rebuild: rings, the learned model (tree + GNN), a new build")

        def progress(step: str, msg: str) -> None:
            err.print(f"[bold]{step:>8}[/bold] {msg}")

        result = rebuild(graph, settings, progress=progress)
        build = result.build
        chosen = result.model_metrics.get("chosen")
        val = result.model_metrics.get("validation", {})
        err.print(
            f"build {build.id}: {build.clusters:,} clusters, {build.accounts_scored:,} accounts "
            f"scored; model {result.model_version} ({'trained' if result.retrained else 'reused'}"
            f", chose {chosen}; validation AUPRC "
            + ", ".join(f"{k} {v['auprc']:.3f}" for k, v in val.items())
            + ")"
        )
        top_flagged = clusters(graph, build.id, min_score=0.0, first=10)
        _print_clusters(list(top_flagged.items), f"Top 10 clusters of build {build.id}")

        err.rule("5. Evaluation against the planted truth")
        # scikit-learn's metrics: about a second of import that only the evaluation needs.
        from ringscope.models.evaluate import evaluate

        flag = DetectConfig().flag_threshold
        out.print(evaluate(graph, truth, flag_threshold=flag).render())

        err.rule("6. The graph")
        _print_counts(graph)
        err.print(f"demo loaded and scored in {time.monotonic() - t0:.1f} s")
        if serve_api:
            key = create_key(graph, "investigator", "demo-investigator")
            top = clusters(graph, build.id, min_score=0.0, first=1).items
    if serve_api:
        err.rule("7. The API")
        account = top[0].members[0] if top else "A0000001"
        base = f"http://{settings.api_host}:{settings.api_port}"
        out.print(f"Workbench:         {base}/app   (paste the key below to sign in)")
        out.print(f"GraphiQL:          {base}/graphql")
        out.print(f"Investigator key:  {key.key}")
        out.print("Header to paste:   " + json.dumps({"Authorization": f"Bearer {key.key}"}))
        out.print("Query to paste (a member of the top flagged cluster):")
        print(DEMO_QUERY.replace("ACCOUNT_ID", account))
        run_server(settings)


def app() -> None:
    """Entry point: run the CLI, printing RingScope errors as one clear line, exit code 2."""
    try:
        code = cli(standalone_mode=False)  # returns the exit code of typer.Exit
    except RingScopeError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
