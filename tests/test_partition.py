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
