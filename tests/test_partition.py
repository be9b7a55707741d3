"""The detector is separable by strong component (models/partition.py): run one component at a
time, with the whole graph's identifier sizes, "now" and burst cohorts, it gives exactly what it
gives on the whole graph. The Spark engine distributes the components on this argument."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ringscope.graph import Graph
from ringscope.ingest import load
from ringscope.models.detect import DetectConfig, detect, link
from ringscope.models.partition import components, detect_partitioned, restrict
from ringscope.models.projection import identifier_ids, read_projection
from ringscope.settings import Settings
from ringscope.synth.generate import generate

pytestmark = pytest.mark.neo4j


def test_detection_one_component_at_a_time_equals_the_whole_graph(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    generate(tmp_path / "data", tmp_path / "truth", 3_000, 4)
    load(tmp_path / "data", graph, neo4j_settings, report_dir=tmp_path / "report", progress=False)
    proj = read_projection(graph)
    cfg = DetectConfig()
    whole = detect(graph, config=cfg, projection=proj)
    parts = detect_partitioned(proj, cfg, lambda nodes: identifier_ids(graph, nodes))
    assert len(whole.clusters) > 50
    assert parts.clusters == whole.clusters  # members, scores, reasons, features, keys
    assert parts.account_scores == whole.account_scores
    assert parts.scorer == whole.scorer


def test_parallel_chunked_reads_give_the_same_projection_and_detection(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """The projection's edges are read in chunks of accounts by two sessions side by side (issue
    #21's faster projection); arrays, clusters and scores must not depend on the chunking or on
    which reader finished first: small chunks over two readers equal one chunk over one."""
    generate(tmp_path / "data", tmp_path / "truth", 2_000, 9)
    load(tmp_path / "data", graph, neo4j_settings, report_dir=tmp_path / "report", progress=False)
    one = read_projection(graph, chunk=1_000_000, readers=1)
    many = read_projection(graph, chunk=97, readers=2)
    assert many.n == one.n > 1_900 and many.ids == one.ids
    for name in ("nodes", "created", "kyc", "label"):
        assert np.array_equal(getattr(many, name), getattr(one, name)), name
    assert many.kinds.keys() == one.kinds.keys()
    for kind, e in one.kinds.items():
        f = many.kinds[kind]
        for name in ("acc", "ident", "first", "last", "count", "nodes", "flag"):
            assert np.array_equal(getattr(f, name), getattr(e, name)), (kind, name)
        if e.total is not None:
            assert f.total is not None and f.round_count is not None and e.round_count is not None
            assert np.array_equal(f.total, e.total) and np.array_equal(f.round_count, e.round_count)
    cfg = DetectConfig()
    a, b = detect(graph, config=cfg, projection=one), detect(graph, config=cfg, projection=many)
    assert len(a.clusters) > 30
    assert b.clusters == a.clusters and b.account_scores == a.account_scores


def test_a_component_alone_keeps_whole_graph_sizes(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """Cut out of the graph, a component's identifiers keep their whole-graph sizes (a hub
    stays a hub) and its links are the whole graph's, restricted."""
    generate(tmp_path / "data", tmp_path / "truth", 1_500, 6)
    load(tmp_path / "data", graph, neo4j_settings, report_dir=tmp_path / "r", progress=False)
    proj = read_projection(graph)
    cfg = DetectConfig()
    links = link(proj, cfg)
    comp = max(components(links, cfg), key=len)
    sub, sub_links = restrict(proj, comp, links)
    assert sub.ids == [proj.ids[i] for i in comp.tolist()]
    assert sub.now() == proj.now()
    for kind, e in sub.kinds.items():
        whole = proj.kinds[kind]
        sizes = dict(zip(whole.nodes.tolist(), whole.degree().tolist(), strict=True))
        assert [sizes[x] for x in e.nodes.tolist()] == e.degree().tolist()
    dense = links.s[comp][:, comp].toarray()
    assert np.array_equal(sub_links.s.toarray(), dense)
