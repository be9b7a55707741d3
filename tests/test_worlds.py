"""Differently built worlds (``WorldParams``) and the bench that judges detection on many of
them (``bench/worlds.py``): the default world is exactly the old one, drawn worlds differ, stay
in their ranges, are recorded, and still keep the generator's own invariants."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import test_generate as gen
from helpers import ringscope
from rich.console import Console
from test_generate import SEED, N, World, _files, _run

from ringscope.graph import Graph
from ringscope.settings import Settings
from ringscope.synth.generate import BENIGN_KINDS, TYPOLOGIES
from ringscope.synth.params import KYC_LOW_RANGE, RANGES, WorldParams

REPO = Path(__file__).resolve().parents[1]
WORLD = 11  # a development world seed
# A drawn world with every mechanic the default world lacks switched well on, so that the
# invariants are checked where they are most likely to break.
DRAWN = dataclasses.replace(
    WorldParams.draw(WORLD),
    household_card_share=0.4,
    household_doc_share=0.15,
    ring_family_share=0.4,
    sleeper_burst_share=1.0,
    honest_virtual_phone_rate=0.05,
    honest_emulator_rate=0.08,
    unlabelled_ring_share=0.5,
    ring_return_share=0.5,
).validated()


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("drawn")
    return World(root, _run(root, N, SEED, world=DRAWN))


# ---- the default world, drawn worlds, ranges, the manifest ----------------------------------


def test_default_world_params_write_the_bytes_of_no_world(tmp_path: Path) -> None:
    none = _run(tmp_path / "none", 1500, 3)
    default = _run(tmp_path / "default", 1500, 3, world=WorldParams())
    assert none == default
    assert _files(tmp_path / "none") == _files(tmp_path / "default")
    manifest = json.loads((tmp_path / "none" / "truth" / "manifest.json").read_text())
    assert "world" not in manifest  # the default world's manifest is the one it always had


def test_world_seeds_draw_different_mechanics_and_data(tmp_path: Path) -> None:
    a, b = WorldParams.draw(1), WorldParams.draw(2)
    assert a == WorldParams.draw(1) and a != b
    differing = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    assert len(differing) > len(RANGES) // 2
    # the same data seed under two worlds: different data
    _run(tmp_path / "a", 1500, 3, world=a)
    _run(tmp_path / "b", 1500, 3, world=b)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa.keys() == fb.keys()
    assert all(fa[k] != fb[k] for k in fa if k.startswith("out/"))


def test_drawn_params_lie_in_their_ranges_and_every_knob_varies() -> None:
    worlds = [WorldParams.draw(s) for s in range(1, 61)]
    for w in [WorldParams(), *worlds]:  # the default world is one of the possible worlds
        for name, (lo, hi, kind) in RANGES.items():
            v = getattr(w, name)
            assert lo <= v <= hi, (w.seed, name, v)
            assert isinstance(v, int) == (kind == "int"), name
        assert abs(sum(w.kyc_p) - 1) < 1e-5 and min(w.kyc_p) > 0
        assert KYC_LOW_RANGE[0] - 1e-5 <= w.kyc_p[0] + w.kyc_p[1] <= KYC_LOW_RANGE[1] + 1e-5
        assert abs(sum(w.typology_weights) - 1) < 1e-5 and min(w.typology_weights) > 0
    for name in [*RANGES, "kyc_p", "typology_weights"]:
        assert len({getattr(w, name) for w in worlds}) > 5, name
    with pytest.raises(ValueError, match="household_size_max"):
        dataclasses.replace(WorldParams(), household_size_max=50).validated()


def test_the_manifest_records_the_drawn_world(drawn: World) -> None:
    manifest = json.loads((drawn.root / "truth" / "manifest.json").read_text())
    assert manifest["world"]["seed"] == WORLD
    assert WorldParams.from_dict(manifest["world"]) == DRAWN
    assert manifest["parameters"]["fraud_rate"] == DRAWN.fraud_rate
    with pytest.raises(ValueError, match="unknown"):
        WorldParams.from_dict({**manifest["world"], "nonsense": 1})


def test_keyword_knobs_override_the_world(tmp_path: Path) -> None:
    _run(tmp_path, 1500, 3, world=WorldParams.draw(5), label_noise=0.2)
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert manifest["parameters"]["label_noise"] == manifest["world"]["label_noise"] == 0.2
    assert manifest["world"]["household_share"] == WorldParams.draw(5).household_share


def test_cli_generate_takes_a_world_seed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGSCOPE_", "NEO4J_"))}
    done = ringscope("generate", "--out", str(tmp_path / "out"), "--accounts", "800",
                     "--seed", "4", "--world", "7", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert WorldParams.from_dict(manifest["world"]) == WorldParams.draw(7)
    assert manifest["parameters"]["seed"] == 4


# ---- a drawn world keeps the generator's invariants ------------------------------------------

SHARED_CHECKS: tuple[Callable[[World], None], ...] = (  # test_generate's, world for world
    gen.test_every_table_has_the_contract_columns_and_types,
    gen.test_ids_are_unique_prefixed_strings,
    gen.test_every_reference_exists,
    gen.test_timestamps_lie_between_account_creation_and_the_end,
    gen.test_amounts_currencies_and_kinds,
    gen.test_phones_are_valid_mobiles_spelt_many_ways,
    gen.test_emails_vary_in_case_and_spacing_but_not_identity,
    gen.test_document_and_card_numbers_carry_valid_check_digits,
    gen.test_normal_life_repeats_logins_and_payees_have_supernodes,
    gen.test_cash_out_rings_use_emulators_virtual_phones_and_pay_one_merchant_round_sums,
    gen.test_mule_rings_share_cards_or_documents_and_collectors_and_open_in_bursts,
    gen.test_synthetic_rings_reuse_documents_on_a_device_farm,
)


@pytest.mark.parametrize("check", SHARED_CHECKS, ids=lambda c: c.__name__)
def test_a_drawn_world_keeps_the_generators_invariants(
    drawn: World, check: Callable[[World], None]
) -> None:
    check(drawn)


def test_a_drawn_world_keeps_recycled_numbers_years_apart(drawn: World) -> None:
    if drawn.counts["truth_benign_groups_recycled_phone"] < 10:
        pytest.skip("this world recycles too few numbers for the check")
    gen.test_recycled_phones_are_years_apart(drawn)


def test_a_drawn_worlds_rings_follow_its_density(drawn: World) -> None:
    sizes = [len(m) for m in drawn.rings.values()]
    assert all(3 <= s <= DRAWN.ring_size_max for s in sizes)
    assert set(drawn.ring_typology.values()) == set(TYPOLOGIES)
    fraud = sum(drawn.fraud.values())
    assert abs(fraud / N - DRAWN.fraud_rate) < 0.002
    in_rings = sum(sizes)
    assert abs(in_rings / fraud - DRAWN.ring_share) < 0.1


def test_a_drawn_worlds_benign_groups_follow_its_sizes_and_stay_legit(drawn: World) -> None:
    groups: dict[str, list[str]] = defaultdict(list)
    kind: dict[str, str] = {}
    for r in drawn.truth["benign_groups"]:
        groups[r["group_id"]].append(r["account_id"])
        kind[r["group_id"]] = r["kind"]
    assert set(kind.values()) >= set(BENIGN_KINDS) - {"campus"}
    ato = {r["account_id"] for r in drawn.truth["rings"] if r["typology"] == "ato"}
    bounds = {
        "household": (2, DRAWN.household_size_max),
        "office": (1, DRAWN.office_size_max),  # the last group of a kind may be trimmed
        "campus": (1, DRAWN.campus_size_max),
        "cafe": (1, DRAWN.cafe_size_max),
    }
    for g, m in groups.items():
        if kind[g] != "carrier_nat":  # fraudsters' families are not in their household groups
            assert not any(drawn.fraud[a] and a not in ato for a in m), (g, kind[g])
        lo, hi = bounds.get(kind[g], (1, N))
        assert lo <= len(m) <= hi, (g, kind[g], len(m))


def test_a_drawn_world_has_what_the_default_world_lacks(drawn: World) -> None:
    links = drawn.links()
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a, ids in links.items():
        for i in ids:
            owners[i].add(a)
    households: dict[str, list[str]] = defaultdict(list)
    for r in drawn.truth["benign_groups"]:
        if r["kind"] == "household":
            households[r["group_id"]].append(r["account_id"])

    def shared_by_household(kind: str) -> int:
        return sum(
            1
            for m in households.values()
            if any(i[0] == kind and m[0] in owners[i] for i in set.intersection(
                *(links[a] for a in m)))
        )  # fmt: skip

    assert shared_by_household("bank_card") > 0.2 * len(households)
    assert shared_by_household("id_document") > 0.05 * len(households)
    # honest accounts with virtual numbers and emulator-looking phones
    legit = {a for a, f in drawn.fraud.items() if not f}
    virtual = {a for a, ids in links.items() for i in ids
               if i[0] == "phone" and drawn.virtual[i[1]]}  # fmt: skip
    emulated = {a for a, ids in links.items() for i in ids
                if i[0] == "device" and drawn.emulator[i[1]]}  # fmt: skip
    assert len(virtual & legit) > 0.02 * len(legit)
    assert len(emulated & legit) > 0.01 * len(legit)
    # ring members tied to honest households (an IP or a card they share with them)
    in_household = {a for m in households.values() for a in m}
    family_typologies = {"cash_out", "mule", "sleeper"}
    members = [r["account_id"] for r in drawn.truth["rings"] if r["typology"] in family_typologies]
    tied = [
        a for a in members
        if any(i[0] in ("ip", "bank_card") and owners[i] & in_household and len(owners[i]) <= 10
               for i in links[a])
    ]  # fmt: skip
    assert len(tied) > 0.2 * len(members)


def test_a_drawn_worlds_sleepers_wake_together(drawn: World) -> None:
    pays: dict[str, list[dict[str, Any]]] = defaultdict(list)
    payers: dict[str, set[str]] = defaultdict(set)
    for r in drawn.rows["payments"]:
        pays[r["account_id"]].append(r)
        payers[r["payee_id"]].add(r["account_id"])
    back = {r["account_id"] for r in drawn.truth["rings"] if r["returned"] == "true"}
    rings = [m for rid, m in drawn.rings.items() if drawn.ring_typology[rid] == "sleeper"]
    assert rings
    for all_members in rings:  # every sleeper ring wakes in this world (sleeper_burst_share 1)
        members = [a for a in all_members if a not in back]  # those that came back wake later
        mset = set(members)
        own = {  # each member's payments to individual payees that only the ring pays
            a: [p["paid_at"] for p in pays[a] if drawn.payee_kind[p["payee_id"]] == "individual"
                and payers[p["payee_id"]] <= set(all_members)]
            for a in members
        }  # fmt: skip
        starts = sorted(t for ts in own.values() for t in ts)
        window = dt.timedelta(days=2, hours=1)
        wake = [t for t in starts if all(any(t <= x <= t + window for x in own[a]) for a in mset)]
        assert wake, "the ring never woke together"
        assert wake[0] - max(drawn.created[a] for a in members) >= dt.timedelta(days=20)
    # The truth says so, for the evaluation to report woken sleepers apart.
    woke = {r["ring_id"]: r["woke_together"] for r in drawn.truth["rings"]}
    assert {woke[r] for r, t in drawn.ring_typology.items() if t == "sleeper"} == {"true"}
    assert drawn.counts["truth_rings_sleeper_woke"] == len(rings)


def test_a_drawn_worlds_rings_come_back_on_their_own_identifiers(drawn: World) -> None:
    """With ``ring_return_share`` on, rings come back after they struck: their last-opened
    members open later, on identifiers the rest of the ring used before them (what a screen at
    sign-up can catch). Takeover victims never come back; the truth marks who did."""
    rows = drawn.truth["rings"]
    back = {r["account_id"] for r in rows if r["returned"] == "true"}
    assert back and drawn.counts["truth_returned_accounts"] == len(back)
    assert not {r["account_id"] for r in rows if r["typology"] == "ato"} & back
    first: dict[tuple[str, tuple[str, str]], dt.datetime] = {}
    for r in drawn.rows["account_devices"]:
        key = (r["account_id"], ("device", r["device_id"]))
        first[key] = min(first.get(key, r["seen_at"]), r["seen_at"])
    for r in drawn.rows["account_identifiers"]:
        key = (r["account_id"], (r["kind"], r["value"].strip().lower()))
        first[key] = min(first.get(key, r["seen_at"]), r["seen_at"])
    for r in drawn.rows["account_phones"]:
        key = (r["account_id"], ("phone", drawn.e164(r["phone"])))
        first[key] = min(first.get(key, r["seen_at"]), r["seen_at"])
    ring_of = {r["account_id"]: r["ring_id"] for r in rows}
    links = drawn.links()
    came_back_on_ring = 0
    for a in back:
        assert all(t >= drawn.created[a] for (b, _), t in first.items() if b == a)
        earlier = {
            i
            for b in drawn.rings[ring_of[a]]
            if b not in back
            for i in links[b]
            if (b, i) in first and first[b, i] < drawn.created[a]
        }
        came_back_on_ring += bool(links[a] & earlier)
    assert came_back_on_ring >= 0.6 * len(back)


def test_a_drawn_worlds_labels_stay_partial_and_noisy_as_drawn(drawn: World) -> None:
    labels = drawn.rows["labels"]
    assert len({r["account_id"] for r in labels}) == len(labels)
    wrong = sum((r["label"] == "fraud") != drawn.fraud[r["account_id"]] for r in labels)
    assert wrong <= (3 * DRAWN.label_noise + 0.02) * len(labels)
    labelled = {r["account_id"] for r in labels if r["label"] == "fraud"}
    unlabelled_rings = [m for m in drawn.rings.values() if not labelled & set(m)]
    assert unlabelled_rings  # half the rings are not discovered yet


# ---- the bench: one tiny world end to end on the real Neo4j ----------------------------------


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_worlds", REPO / "bench" / "worlds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in_unit(x: float | None) -> bool:
    return x is None or 0.0 <= x <= 1.0


@pytest.mark.neo4j
@pytest.mark.slow
def test_bench_evaluates_one_world_end_to_end(
    bench: ModuleType, graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    r, learned = bench.run_world(
        graph, neo4j_settings, 3, 2000, tmp_path, use_model=False, bulk=False,
        variants=("prior", "learned"),
    )  # fmt: skip
    assert (r["variant"], learned["variant"]) == ("prior", "learned")
    assert learned["rings"] == r["rings"] and _in_unit(learned["precision"])
    for key in ("world_seed", "world", "accounts", "flag_threshold", "rings", "rings_found",
                "ring_recall", "clusters", "flagged_clusters", "precision", "recall_at_p90",
                "benign_groups", "benign_fpr", "benign_fpr_by_kind", "recall_by_typology",
                "rings_by_typology", "auroc", "auprc", "calibration", "seconds"):  # fmt: skip
        assert key in r, key
    assert r["world_seed"] == 3 and r["world"] == WorldParams.draw(3).to_dict()
    assert r["accounts"] == 2000 and r["rings"] > 0
    for metric in ("ring_recall", "precision", "recall_at_p90", "benign_fpr", "auroc"):
        assert _in_unit(r[metric]), metric
    assert set(r["recall_by_typology"]) == set(TYPOLOGIES)
    assert all(_in_unit(v) for v in r["recall_by_typology"].values())
    assert set(r["benign_fpr_by_kind"]) == set(BENIGN_KINDS)
    assert all(_in_unit(v) for v in r["benign_fpr_by_kind"].values())
    bins = r["calibration"]
    assert [b["lo"] for b in bins] == pytest.approx([i / 10 for i in range(10)])
    assert sum(b["clusters"] for b in bins) == r["clusters"] > 0
    for b in bins:
        assert 0 <= b["rings"] <= b["clusters"] and 0 <= b["true_positives"] <= b["clusters"]
        assert _in_unit(b["ring_share"]) and _in_unit(b["true_positive_share"])
        if b["clusters"]:
            assert b["lo"] - 1e-9 <= b["mean_score"] <= b["hi"] + 1e-9
    if float(r["flag_threshold"] * 10).is_integer():  # the threshold sits on a bin edge
        flagged = sum(b["clusters"] for b in bins if b["lo"] >= r["flag_threshold"] - 1e-9)
        assert flagged == r["flagged_clusters"]

    summary = bench.summarise([r, r])
    assert summary["ring_recall"]["mean"] == summary["ring_recall"]["worst"] == r["ring_recall"]
    assert sum(b["clusters"] for b in summary["calibration_pooled"]) == 2 * r["clusters"]
    # Every missed ring has one cause, and the pooled table adds the worlds up.
    missed = r["missed_by_typology"]
    assert set(missed) == set(TYPOLOGIES)
    assert sum(sum(v.values()) for v in missed.values()) == r["rings"] - r["rings_found"]
    for t in TYPOLOGIES:
        assert sum(missed[t].values()) == r["rings_by_typology"][t] - round(
            (r["recall_by_typology"][t] or 0.0) * r["rings_by_typology"][t]
        )
        for cause in bench.MISS_CAUSES:
            assert summary["missed_pooled"][t][cause] == 2 * missed[t].get(cause, 0)
    out = io.StringIO()
    bench.render([r], bench.summarise([r]), Console(file=out, width=200))
    text = out.getvalue()
    assert "worst" in text and "reliability" in text and "Missed rings by cause" in text
