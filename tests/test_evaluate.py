"""Evaluation against a tiny hand-made ground truth whose metrics are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ringscope.graph import Graph
from ringscope.models.builds import write_build
from ringscope.models.detect import Cluster, Detection
from ringscope.models.evaluate import (
    TruthError,
    evaluate,
    evaluation_from_json,
    recall_at_precision,
)

IDS = [f"A{i:03d}" for i in range(20)]


def cl(members: list[str], score: float) -> Cluster:
    return Cluster(tuple(sorted(members)), score, ("why",), {}, (), 0.5)


def write_truth(d: Path) -> None:
    # Rings: R1 cash_out A000-A003, R2 mule A004-A007, R3 mule A008-A009. A010 is a lone fraudster.
    rings = {"R1": ("cash_out", IDS[0:4]), "R2": ("mule", IDS[4:8]), "R3": ("mule", IDS[8:10])}
    ring_of = {a: r for r, (_, ms) in rings.items() for a in ms}
    typ = {a: rings[r][0] for a, r in ring_of.items()} | {"A010": "lone"}
    lines = ["account_id,is_fraud,ring_id,typology"]
    for a in IDS:
        fraud = a in typ
        lines.append(f"{a},{str(fraud).lower()},{ring_of.get(a, '')},{typ.get(a, '')}")
    (d / "accounts.csv").write_text("\n".join(lines) + "\n")
    (d / "rings.csv").write_text(
        "ring_id,typology,account_id\n"
        + "".join(f"{r},{t},{a}\n" for r, (t, ms) in rings.items() for a in ms)
    )
    groups = {
        "G1": ("household", ["A011", "A012", "A013"]),
        "G2": ("office", ["A014", "A015", "A016", "A017"]),
        "G3": ("cafe", ["A018", "A019"]),
    }
    (d / "benign_groups.csv").write_text(
        "group_id,kind,account_id\n"
        + "".join(f"{g},{k},{a}\n" for g, (k, ms) in groups.items() for a in ms)
    )


def detection() -> Detection:
    clusters = (
        cl([*IDS[0:4], "A011"], 0.9),  # R1 found (J 4/5); 4/5 fraud: true positive
        cl(["A004", "A005", "A014", "A015", "A016"], 0.8),  # R2 J 2/6: missed; 2/5 fraud: FP;
        # office G2 J 3/6 = 0.5: flagged
        cl(["A008", "A009"], 0.3),  # R3 exactly, but below the threshold: missed
        cl(["A018", "A019"], 0.6),  # cafe G3 matched: flagged; no fraud: FP
        # household G1: only A011 (1 of 3) inside a flagged cluster: not flagged
    )
    scores = {a: 0.9 for a in IDS[0:10]} | {"A010": 0.1}
    scores |= {a: 0.2 for a in IDS[11:20]} | {"A018": 0.95}
    del scores["A017"]  # unscored: counts as 0
    return Detection(clusters, scores, {})


def test_evaluate_on_hand_made_truth(graph: Graph, tmp_path: Path) -> None:
    write_truth(tmp_path)
    build = write_build(graph, detection())
    ev = evaluate(graph, tmp_path)
    assert ev.build_id == build.id and ev.flag_threshold == 0.5
    assert (ev.accounts, ev.fraud_accounts, ev.accounts_unscored) == (20, 11, 1)
    assert (ev.rings, ev.rings_found) == (3, 1) and ev.ring_recall == pytest.approx(1 / 3)
    assert (ev.clusters, ev.flagged_clusters, ev.flagged_true) == (4, 3, 1)
    assert ev.precision == pytest.approx(1 / 3)
    assert (ev.benign_groups, ev.benign_flagged) == (3, 2)
    assert ev.benign_fpr == pytest.approx(2 / 3)
    # 11 fraud x 9 legit pairs: ten fraud at 0.9 beat 8 legit (not A018 at 0.95) = 80, and A010
    # at 0.1 beats the unscored A017 = 1.
    assert ev.auroc == pytest.approx(81 / 99)
    # Thresholds 0.9 (P 10/11, R 10/11) and 0.1 (P 11/19, R 1).
    assert ev.auprc == pytest.approx(10 / 11 * 10 / 11 + 1 / 11 * 11 / 19)

    by_t = {t.typology: t for t in ev.typologies}
    assert set(by_t) == {"cash_out", "mule", "lone"}
    assert (by_t["cash_out"].rings, by_t["cash_out"].rings_found) == (1, 1)
    assert by_t["cash_out"].recall == 1.0 and by_t["mule"].recall == 0.0
    assert (by_t["mule"].rings, by_t["mule"].accounts) == (2, 6)
    assert by_t["cash_out"].auroc == pytest.approx(32 / 36)
    assert by_t["mule"].auroc == pytest.approx(48 / 54)
    assert by_t["lone"].auroc == pytest.approx(1 / 9) and by_t["lone"].recall is None
    by_k = {k.kind: (k.groups, k.flagged, k.fpr) for k in ev.benign_kinds}
    assert by_k == {"cafe": (1, 1, 1.0), "household": (1, 0, 0.0), "office": (1, 1, 1.0)}

    # A lower threshold flags the R3 cluster too; a higher one leaves only R1's.
    assert evaluate(graph, tmp_path, flag_threshold=0.3).ring_recall == pytest.approx(2 / 3)
    high = evaluate(graph, tmp_path, build_id=build.id, flag_threshold=0.85)
    assert (high.flagged_clusters, high.precision, high.benign_fpr) == (1, 1.0, 0.0)

    # JSON round trip and the rich table.
    assert evaluation_from_json(ev.to_json()) == ev
    console = Console(width=120, record=True)
    console.print(ev.render())
    text = console.export_text()
    assert "ring recall" in text and "0.333" in text and "household" in text


def test_sleeper_rings_that_woke_together_are_reported_apart(graph: Graph, tmp_path: Path) -> None:
    write_truth(tmp_path)
    # Three sleeper rings: S1 and S2 woke together inside the data, S3 did not.
    rows = {"S1": (["A011", "A012"], "true"), "S2": (["A013", "A014"], "true"),
            "S3": (["A015", "A016"], "false")}  # fmt: skip
    with (tmp_path / "rings.csv").open("w") as f:
        f.write("ring_id,typology,account_id,woke_together\n")
        f.write("".join(f"R1,cash_out,{a},\n" for a in IDS[0:4]))
        f.write("".join(f"{r},sleeper,{a},{w}\n" for r, (ms, w) in rows.items() for a in ms))
    write_build(graph, Detection((cl(IDS[0:4], 0.9), cl(["A011", "A012"], 0.9),
                                  cl(["A015", "A016"], 0.9)), {}, {}))  # fmt: skip
    by_t = {t.typology: t for t in evaluate(graph, tmp_path).typologies}
    s = by_t["sleeper"]
    assert (s.rings, s.rings_found, s.woke, s.woke_found) == (3, 2, 2, 1)
    assert s.recall_woke == 0.5 and s.recall_not_woke == 1.0
    assert (by_t["cash_out"].woke, by_t["cash_out"].recall_woke) == (0, None)
    console = Console(width=120, record=True)
    console.print(evaluate(graph, tmp_path).render())
    assert "woke together" in console.export_text()


def test_missed_rings_are_reported_by_cause(graph: Graph, tmp_path: Path) -> None:
    write_truth(tmp_path)
    # Two more rings: R4 (A010-A012) has one member in the flagged R1 cluster (A011) and the rest
    # in no cluster; R5 (A013, A017) has no member in any cluster.
    with (tmp_path / "rings.csv").open("a") as f:
        f.write("".join(f"R4,ato,{a}\n" for a in ("A010", "A011", "A012")))
        f.write("".join(f"R5,ato,{a}\n" for a in ("A013", "A017")))
    write_build(graph, detection())
    ev = evaluate(graph, tmp_path)
    by_t = {t.typology: t for t in ev.typologies}
    assert by_t["cash_out"].missed == {}
    # R2: A004 and A005 (half of it) sit in a flagged cluster that holds an office too; R3 is
    # grouped exactly but scored 0.3, under the flag.
    assert by_t["mule"].missed == {"boundary": 1, "scored_low": 1}
    assert by_t["ato"].missed == {"partial": 1, "unclustered": 1}
    # At a flag point under 0.3, R3 is found and no longer missed.
    low = {t.typology: t for t in evaluate(graph, tmp_path, flag_threshold=0.3).typologies}
    assert low["mule"].missed == {"boundary": 1}
    assert evaluation_from_json(ev.to_json()) == ev
    console = Console(width=120, record=True)
    console.print(ev.render())
    assert "1 boundary, 1 scored low" in console.export_text()


def test_missing_truth_file_is_a_clear_error(graph: Graph, tmp_path: Path) -> None:
    write_truth(tmp_path)
    (tmp_path / "rings.csv").unlink()
    write_build(graph, detection())
    with pytest.raises(TruthError, match=r"rings\.csv"):
        evaluate(graph, tmp_path)


def test_recall_at_fixed_precision(graph: Graph, tmp_path: Path) -> None:
    write_truth(tmp_path)
    build = write_build(graph, detection())
    # Thresholds, highest first: 0.9 (P 1/1, R1 found: recall 1/3), 0.8 (P 1/2), 0.6 (P 1/3),
    # 0.3 (P 2/4, R3 found too: recall 2/3).
    assert recall_at_precision(graph, tmp_path, precision=0.9) == (pytest.approx(1 / 3), 0.9)
    assert recall_at_precision(graph, tmp_path, precision=0.5, build_id=build.id) == (
        pytest.approx(2 / 3),
        0.3,
    )
    assert recall_at_precision(graph, tmp_path, precision=0.4) == (pytest.approx(2 / 3), 0.3)
