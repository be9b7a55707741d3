"""Unit tests of the synthetic data generator (no database): contract, integrity, realism."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ringscope.synth.generate import BENIGN_KINDS, TYPOLOGIES, generate

N = 5000
SEED = 7
T_END = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)

CONTRACT = {
    "accounts": ["account_id", "created_at", "kyc_level", "country"],
    "devices": ["device_id", "os", "is_emulator"],
    "phones": ["phone", "carrier", "is_virtual"],
    "payees": ["payee_id", "kind", "name"],
    "account_devices": ["account_id", "device_id", "seen_at"],
    "account_phones": ["account_id", "phone", "seen_at"],
    "payments": ["payment_id", "account_id", "payee_id", "amount", "currency", "paid_at"],
    "account_identifiers": ["account_id", "kind", "value", "seen_at"],
    "labels": ["account_id", "label", "labelled_at"],
}
TS = pa.timestamp("us", tz="UTC")


class World:
    """One generated data set, read back into plain Python structures."""

    def __init__(self, root: Path, counts: dict[str, int], region: str = "CN") -> None:
        self.root = root
        self.counts = counts
        self.region = region
        self.tables = {t: pq.read_table(root / "out" / f"{t}.parquet") for t in CONTRACT}
        self.rows = {t: tab.to_pylist() for t, tab in self.tables.items()}
        self.truth = {
            name: list(csv.DictReader((root / "truth" / f"{name}.csv").open()))
            for name in ("accounts", "rings", "benign_groups")
        }
        self.created = {r["account_id"]: r["created_at"] for r in self.rows["accounts"]}
        self.fraud = {r["account_id"]: r["is_fraud"] == "true" for r in self.truth["accounts"]}
        self.rings: dict[str, list[str]] = defaultdict(list)
        self.ring_typology: dict[str, str] = {}
        for r in self.truth["rings"]:
            self.rings[r["ring_id"]].append(r["account_id"])
            self.ring_typology[r["ring_id"]] = r["typology"]
        self.emulator = {r["device_id"]: r["is_emulator"] for r in self.rows["devices"]}
        self.virtual = {self.e164(r["phone"]): r["is_virtual"] for r in self.rows["phones"]}
        self.payee_kind = {r["payee_id"]: r["kind"] for r in self.rows["payees"]}

    def e164(self, raw: str) -> str:
        num = phonenumbers.parse(raw, self.region)
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)

    def links(self) -> dict[str, set[tuple[str, str]]]:
        """Every identifier each account touches, normalised as the loader will: (kind, value)."""
        out: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for r in self.rows["account_devices"]:
            out[r["account_id"]].add(("device", r["device_id"]))
        for r in self.rows["account_phones"]:
            out[r["account_id"]].add(("phone", self.e164(r["phone"])))
        for r in self.rows["account_identifiers"]:
            out[r["account_id"]].add((r["kind"], r["value"].strip().lower()))
        for r in self.rows["payments"]:
            out[r["account_id"]].add(("payee", r["payee_id"]))
        return out


def _run(root: Path, accounts: int, seed: int, fmt: str = "parquet", **kw: Any) -> dict[str, int]:
    return generate(root / "out", root / "truth", accounts, seed, fmt, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("gen")
    return World(root, _run(root, N, SEED))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---- determinism and the contract ------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    _run(tmp_path / "a", 2000, 1)
    _run(tmp_path / "b", 2000, 1)
    _run(tmp_path / "c", 2000, 2)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == len(CONTRACT) + 4
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if a[k] != c[k]]
    assert len(differing) >= len(CONTRACT)


def test_every_table_has_the_contract_columns_and_types(world: World) -> None:
    types = {
        "created_at": TS,
        "seen_at": TS,
        "paid_at": TS,
        "labelled_at": TS,
        "kyc_level": pa.int8(),
        "is_emulator": pa.bool_(),
        "is_virtual": pa.bool_(),
        "amount": pa.decimal128(18, 2),
    }
    for name, columns in CONTRACT.items():
        schema = world.tables[name].schema
        assert schema.names == columns, name
        for f in schema:
            assert f.type == types.get(f.name, pa.string()), (name, f.name, f.type)
        assert world.counts[name] == world.tables[name].num_rows
        assert world.tables[name].num_rows > 0, name
    assert world.counts["accounts"] == N


def test_ids_are_unique_prefixed_strings(world: World) -> None:
    for table, col, pattern in (
        ("accounts", "account_id", r"A\d{7}"),
        ("devices", "device_id", r"D\d{8}"),
        ("payees", "payee_id", r"[PU]\d{7}"),
        ("payments", "payment_id", r"T\d{9}"),
    ):
        ids = [r[col] for r in world.rows[table]]
        assert len(set(ids)) == len(ids), table
        assert all(re.fullmatch(pattern, i) for i in ids), table
    assert world.rows["accounts"][0]["account_id"] == "A0000001"
    merchants = {r["payee_id"][0] for r in world.rows["payees"] if r["kind"] == "merchant"}
    assert merchants == {"P"}
    # one phones row per number, however it is spelt
    phones = [world.e164(r["phone"]) for r in world.rows["phones"]]
    assert len(set(phones)) == len(phones)


def test_every_reference_exists(world: World) -> None:
    accounts = set(world.created)
    for table in ("account_devices", "account_phones", "payments", "account_identifiers", "labels"):
        assert {r["account_id"] for r in world.rows[table]} <= accounts, table
    assert {r["device_id"] for r in world.rows["account_devices"]} == set(world.emulator)
    assert {world.e164(r["phone"]) for r in world.rows["account_phones"]} == set(world.virtual)
    assert {r["payee_id"] for r in world.rows["payments"]} <= set(world.payee_kind)
    assert [r["account_id"] for r in world.truth["accounts"]] == list(world.created)
    ring_members = {r["account_id"] for r in world.truth["rings"]}
    benign_members = {r["account_id"] for r in world.truth["benign_groups"]}
    assert ring_members <= accounts and benign_members <= accounts


def test_timestamps_lie_between_account_creation_and_the_end(world: World) -> None:
    start = T_END - dt.timedelta(days=3 * 365 + 1)
    assert all(start <= c < T_END for c in world.created.values())
    for table, col in (
        ("account_devices", "seen_at"),
        ("account_phones", "seen_at"),
        ("account_identifiers", "seen_at"),
        ("payments", "paid_at"),
        ("labels", "labelled_at"),
    ):
        rows = world.rows[table]
        assert all(world.created[r["account_id"]] <= r[col] <= T_END for r in rows), table
        times = [r[col] for r in rows]
        assert times == sorted(times), table  # logs are written in time order
    assert all(world.created[r["account_id"]] < r["labelled_at"] for r in world.rows["labels"])
    ids = list(world.created)
    assert ids == sorted(ids, key=lambda a: world.created[a])  # ids follow creation order


def test_amounts_currencies_and_kinds(world: World) -> None:
    pays = world.rows["payments"]
    assert all(r["amount"] > 0 and r["amount"].as_tuple().exponent == -2 for r in pays)
    cny = sum(r["currency"] == "CNY" for r in pays) / len(pays)
    assert 0.9 < cny < 1.0
    assert {r["kind"] for r in world.rows["account_identifiers"]} == {
        "ip",
        "email",
        "id_document",
        "bank_card",
    }
    assert {r["kind"] for r in world.rows["payees"]} == {"merchant", "individual"}
    assert {r["kyc_level"] for r in world.rows["accounts"]} == {0, 1, 2, 3}
    assert {r["label"] for r in world.rows["labels"]} == {"fraud", "legit"}
    home = sum(r["country"] == "CN" for r in world.rows["accounts"]) / N
    assert 0.9 < home < 1.0


# ---- phones and emails: valid, spelt in a realistic mix ----------------------------------------


def test_phones_are_valid_mobiles_spelt_many_ways(world: World) -> None:
    raw = [r["phone"] for r in world.rows["account_phones"]]
    for s in raw + [r["phone"] for r in world.rows["phones"]]:
        num = phonenumbers.parse(s, "CN")
        assert phonenumbers.is_valid_number(num), s
        assert phonenumbers.number_type(num) == phonenumbers.PhoneNumberType.MOBILE, s
    styles = {
        "e164": r"\+86\d{11}",
        "spaced": r"\d{3} \d{4} \d{4}",
        "plain": r"1\d{10}",
        "dashed": r"\d{3}-\d{4}-\d{4}",
        "intl_spaced": r"\+86 \d{3} \d{4} \d{4}",
        "idd": r"0086\d{11}",
    }
    seen = {name for s in raw for name, pat in styles.items() if re.fullmatch(pat, s)}
    assert seen == set(styles)
    assert all(any(re.fullmatch(p, s) for p in styles.values()) for s in raw)
    spellings: dict[str, set[str]] = defaultdict(set)
    for s in raw:
        spellings[world.e164(s)].add(s)
    assert sum(len(v) > 1 for v in spellings.values()) > 100
    virtual_prefixes = {p for p, v in world.virtual.items() if v}
    assert virtual_prefixes and all(
        p[3:6] in {"170", "171", "162", "165", "167"} for p in virtual_prefixes
    )


@pytest.mark.parametrize("region", ["GB", "US"])
def test_phones_of_other_regions_are_valid(tmp_path: Path, region: str) -> None:
    counts = _run(tmp_path, 600, 3, default_region=region)
    assert counts["accounts"] == 600
    rows = pq.read_table(tmp_path / "out" / "account_phones.parquet").column("phone").to_pylist()
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(s, region)) for s in rows)
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert manifest["parameters"]["default_region"] == region


def test_emails_vary_in_case_and_spacing_but_not_identity(world: World) -> None:
    emails = [r["value"] for r in world.rows["account_identifiers"] if r["kind"] == "email"]
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() for e in emails)
    messy = sum(e != e.strip().lower() for e in emails) / len(emails)
    assert 0.05 < messy < 0.35
    assert all(re.fullmatch(r"[a-z0-9._]+@[a-z0-9.]+", e.strip().lower()) for e in emails)


def test_document_and_card_numbers_carry_valid_check_digits(world: World) -> None:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for r in world.rows["account_identifiers"]:
        v = r["value"]
        if r["kind"] == "id_document":
            assert len(v) == 18
            total = sum(int(c) * w for c, w in zip(v[:17], weights, strict=True))
            assert v[17] == "10X98765432"[total % 11], v
        elif r["kind"] == "bank_card":
            digits = [int(c) for c in v][::-1]
            assert len(v) == 16 and v.startswith("62")
            total = sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d)
                        for i, d in enumerate(digits))  # fmt: skip
            assert total % 10 == 0, v


# ---- the population: normal life, supernodes, benign sharing --------------------------------


def test_normal_life_repeats_logins_and_payees_have_supernodes(world: World) -> None:
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for r in world.rows["account_devices"]:
        pairs[(r["account_id"], r["device_id"])] += 1
    assert sum(pairs.values()) / len(pairs) > 2.5  # logins repeat
    payers: dict[str, set[str]] = defaultdict(set)
    for r in world.rows["payments"]:
        payers[r["payee_id"]].add(r["account_id"])
    top = sorted((len(v) for v in payers.values()), reverse=True)
    assert top[0] > 0.2 * N  # a supernode merchant
    assert top[len(top) // 2] < 0.01 * N  # and a long tail
    friends = sum(1 for p in payers if world.payee_kind[p] == "individual")
    assert friends > 0.1 * N


def test_benign_groups_are_plentiful_legit_and_really_share(world: World) -> None:
    groups: dict[str, list[str]] = defaultdict(list)
    kind: dict[str, str] = {}
    for r in world.truth["benign_groups"]:
        groups[r["group_id"]].append(r["account_id"])
        kind[r["group_id"]] = r["kind"]
    assert set(kind.values()) == set(BENIGN_KINDS)
    members = {a for g in groups.values() for a in g if kind}
    non_nat = {a for g, m in groups.items() if kind[g] != "carrier_nat" for a in m}
    ring_members = {r["account_id"] for r in world.truth["rings"]}
    assert len(non_nat) > 5 * len(ring_members)
    links = world.links()
    for g, m in groups.items():
        if kind[g] != "carrier_nat":  # everyone uses the carrier; other groups are legit
            ato_victims = {a for r in world.truth["rings"] if r["typology"] == "ato"
                           for a in [r["account_id"]]}  # fmt: skip
            assert not any(world.fraud[a] and a not in ato_victims for a in m)
        if kind[g] in ("household", "office", "campus", "cafe", "recycled_phone"):
            shared = set.intersection(
                *(links[a] - {("payee", p) for p in world.payee_kind} for a in m)
            )
            if kind[g] in ("office", "campus", "recycled_phone"):
                assert shared, (g, kind[g])
        if kind[g] == "office":
            assert 10 <= len(m) <= 200
        if kind[g] == "household":
            assert 2 <= len(m) <= 5
    nat_sizes = [len(m) for g, m in groups.items() if kind[g] == "carrier_nat"]
    assert max(nat_sizes) > 1000
    assert len(members) > 0.8 * N


def test_recycled_phones_are_years_apart(world: World) -> None:
    seen: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for r in world.rows["account_phones"]:
        seen[(world.e164(r["phone"]), r["account_id"])].append(r["seen_at"])
    pairs: dict[str, list[str]] = defaultdict(list)
    for r in world.truth["benign_groups"]:
        if r["kind"] == "recycled_phone":
            pairs[r["group_id"]].append(r["account_id"])
    assert len(pairs) >= 10
    by_account: dict[str, dict[str, list[dt.datetime]]] = defaultdict(dict)
    for (phone, acc), times in seen.items():
        by_account[acc][phone] = times
    for old, new in pairs.values():
        common = set(by_account[old]) & set(by_account[new])
        assert len(common) == 1
        phone = common.pop()
        assert min(by_account[new][phone]) - max(by_account[old][phone]) > dt.timedelta(days=300)


# ---- fraud rings -------------------------------------------------------------------------------


def test_rings_have_heavy_tailed_sizes_and_all_typologies(world: World) -> None:
    sizes = [len(m) for m in world.rings.values()]
    assert all(3 <= s <= 60 for s in sizes)
    assert set(world.ring_typology.values()) == set(TYPOLOGIES)
    truth = {r["account_id"]: r for r in world.truth["accounts"]}
    for rid, members in world.rings.items():
        assert all(truth[a]["ring_id"] == rid for a in members)
        assert all(truth[a]["typology"] == world.ring_typology[rid] for a in members)
    fraud = [a for a, f in world.fraud.items() if f]
    assert 0.01 <= len(fraud) / N <= 0.03
    in_rings = sum(len(m) for m in world.rings.values())
    assert in_rings > len(fraud) / 2
    lone = [a for a in fraud if truth[a]["typology"] == "lone"]
    assert lone and all(truth[a]["ring_id"] == "" for a in lone)
    assert all(truth[a]["typology"] == "" for a, f in world.fraud.items() if not f)


def test_cash_out_rings_use_emulators_virtual_phones_and_pay_one_merchant_round_sums(
    world: World,
) -> None:
    devices: dict[str, set[str]] = defaultdict(set)
    for r in world.rows["account_devices"]:
        devices[r["account_id"]].add(r["device_id"])
    phones: dict[str, set[str]] = defaultdict(set)
    for r in world.rows["account_phones"]:
        phones[r["account_id"]].add(world.e164(r["phone"]))
    pays: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in world.rows["payments"]:
        pays[r["account_id"]].append(r)
    rings = [m for rid, m in world.rings.items() if world.ring_typology[rid] == "cash_out"]
    assert rings
    for members in rings:
        assert all(any(world.emulator[d] for d in devices[a]) for a in members)
        assert all(any(world.virtual[p] for p in phones[a]) for a in members)
        merchants = set.intersection(
            *({p["payee_id"] for p in pays[a] if world.payee_kind[p["payee_id"]] == "merchant"}
              for a in members)
        )  # fmt: skip
        colluding = [
            m for m in merchants
            if all(p["amount"] % 100 == 0 for a in members for p in pays[a] if p["payee_id"] == m)
        ]  # fmt: skip
        assert colluding
        first_pay = min(
            p["paid_at"] for a in members for p in pays[a] if p["payee_id"] == colluding[0]
        )
        assert first_pay - min(world.created[a] for a in members) < dt.timedelta(days=30)
        assert all(a_kyc <= 1 for a_kyc in (world_kyc(world)[a] for a in members))


def world_kyc(world: World) -> dict[str, int]:
    return {r["account_id"]: r["kyc_level"] for r in world.rows["accounts"]}


def test_ato_members_are_old_accounts_hit_on_shared_new_devices(world: World) -> None:
    logins: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for r in world.rows["account_devices"]:
        logins[r["device_id"]].append((r["seen_at"], r["account_id"]))
    rings = [m for rid, m in world.rings.items() if world.ring_typology[rid] == "ato"]
    assert rings
    for members in rings:
        mset = set(members)
        attack = []  # devices used by several members, all within a few days
        for seen in logins.values():
            times = [t for t, a in seen if a in mset]
            if len({a for _, a in seen} & mset) >= 2 and max(times) - min(times) < dt.timedelta(4):
                attack.append((min(times), {a for _, a in seen} & mset))
        assert attack, "ATO ring members share no new device"
        first = min(t for t, _ in attack)
        hit = set().union(*(m for _, m in attack))
        assert len(hit) >= len(members) / 2
        assert all(first - world.created[a] > dt.timedelta(days=365) for a in members)
        # they have a normal history before the takeover
        assert all(any(t < first for d in logins for t, x in logins[d] if x == a) for a in members)


def test_sleeper_members_share_exactly_one_identifier_with_one_or_two_others(world: World) -> None:
    links = world.links()
    degree: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a, ids in links.items():
        for i in ids:
            degree[i].add(a)
    rings = [m for rid, m in world.rings.items() if world.ring_typology[rid] == "sleeper"]
    assert rings
    for members in rings:
        rare = {a: {i for i in links[a] if len(degree[i]) <= 10} for a in members}
        for a in members:
            neighbours = {b: rare[a] & rare[b] for b in members if b != a and rare[a] & rare[b]}
            assert 1 <= len(neighbours) <= 2, (a, neighbours)
            assert all(len(shared) == 1 for shared in neighbours.values()), (a, neighbours)
        # together they form one chain: connected only through multiple hops
        seen, todo = {members[0]}, [members[0]]
        while todo:
            a = todo.pop()
            for b in members:
                if b not in seen and rare[a] & rare[b]:
                    seen.add(b)
                    todo.append(b)
        assert seen == set(members)


def test_truth_says_which_sleeper_rings_woke_together(world: World) -> None:
    # The default world's sleepers never wake together: the truth column says false for them
    # and is empty for the other typologies.
    woke = {(r["ring_id"], r["typology"], r["woke_together"]) for r in world.truth["rings"]}
    assert {w for _, t, w in woke if t == "sleeper"} == {"false"}
    assert {w for _, t, w in woke if t != "sleeper"} == {""}
    assert world.counts["truth_rings_sleeper_woke"] == 0


def test_mule_rings_share_cards_or_documents_and_collectors_and_open_in_bursts(
    world: World,
) -> None:
    links = world.links()
    rings = [m for rid, m in world.rings.items() if world.ring_typology[rid] == "mule"]
    assert rings
    for members in rings:
        shared_kyc = [
            i for i in set().union(*(links[a] for a in members))
            if i[0] in ("bank_card", "id_document") and sum(i in links[a] for a in members) >= 2
        ]  # fmt: skip
        if len(members) >= 4:
            assert shared_kyc
        collectors = {i for a in members for i in links[a]
                      if i[0] == "payee" and world.payee_kind[i[1]] == "individual"
                      and sum(i in links[b] for b in members) >= 2}  # fmt: skip
        assert collectors or len(members) < 3
        created = sorted(world.created[a] for a in members)
        middle = created[len(created) // 5 : len(created) - len(created) // 5 or None]
        assert middle[-1] - middle[0] < dt.timedelta(days=60)


def test_synthetic_rings_reuse_documents_on_a_device_farm(world: World) -> None:
    links = world.links()
    rings = [m for rid, m in world.rings.items() if world.ring_typology[rid] == "synthetic"]
    assert rings
    for members in rings:
        docs = [i for a in members for i in links[a] if i[0] == "id_document"]
        assert len(set(docs)) < len(docs) or len(members) < 3
        devs = {i[1] for a in members for i in links[a] if i[0] == "device"}
        farm = [d for d in devs if sum(("device", d) in links[a] for a in members) >= 2]
        assert farm
        phones = {i[1] for a in members for i in links[a] if i[0] == "phone"}
        assert any(world.virtual[p] for p in phones) or all(
            len({b for b, ids in links.items() if ("phone", p) in ids}) >= 2 for p in phones
        )


# ---- labels ------------------------------------------------------------------------------------


def test_labels_are_partial_and_a_little_noisy(world: World) -> None:
    labels = world.rows["labels"]
    assert len({r["account_id"] for r in labels}) == len(labels)
    wrong = sum((r["label"] == "fraud") != world.fraud[r["account_id"]] for r in labels)
    assert 0 < wrong <= 0.05 * len(labels)
    fraud = [a for a, f in world.fraud.items() if f]
    known = sum(1 for r in labels if r["label"] == "fraud" and world.fraud[r["account_id"]])
    assert 0.15 * len(fraud) <= known <= 0.5 * len(fraud)
    confirmed = sum(1 for r in labels if r["label"] == "legit" and not world.fraud[r["account_id"]])
    assert 0.015 * (N - len(fraud)) <= confirmed <= 0.06 * (N - len(fraud))


def test_more_label_noise_gives_more_wrong_labels(tmp_path: Path) -> None:
    _run(tmp_path, 4000, 5, label_noise=0.3)
    labels = pq.read_table(tmp_path / "out" / "labels.parquet").to_pylist()
    fraud = {
        r["account_id"]: r["is_fraud"] == "true"
        for r in csv.DictReader((tmp_path / "truth" / "accounts.csv").open())
    }
    wrong = sum((r["label"] == "fraud") != fraud[r["account_id"]] for r in labels)
    assert 0.2 < wrong / len(labels) < 0.4


# ---- CSV and the manifest ------------------------------------------------------------------------


def test_csv_holds_the_same_data_with_iso_timestamps(tmp_path: Path, world: World) -> None:
    counts = _run(tmp_path, N, SEED, "csv")
    assert {k: v for k, v in counts.items()} == world.counts
    for name, columns in CONTRACT.items():
        with (tmp_path / "out" / f"{name}.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == columns
        assert len(rows) == world.counts[name]
    payments = list(csv.DictReader((tmp_path / "out" / "payments.csv").open()))
    first = world.rows["payments"][0]
    assert payments[0]["amount"] == f"{first['amount']:.2f}"
    assert Decimal(payments[0]["amount"]) == first["amount"]
    assert payments[0]["paid_at"] == first["paid_at"].isoformat()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", payments[-1]["paid_at"])
    accounts = list(csv.DictReader((tmp_path / "out" / "accounts.csv").open()))
    assert [r["account_id"] for r in accounts] == list(world.created)
    assert {
        r["is_emulator"] for r in csv.DictReader((tmp_path / "out" / "devices.csv").open())
    } == {
        "true",
        "false",
    }
    assert (tmp_path / "truth" / "accounts.csv").read_bytes() == (
        world.root / "truth" / "accounts.csv"
    ).read_bytes()


def test_manifest_records_parameters_and_counts(world: World) -> None:
    manifest = json.loads((world.root / "truth" / "manifest.json").read_text())
    params = manifest["parameters"]
    assert (params["accounts"], params["seed"], params["fmt"], params["default_region"]) == (
        N,
        SEED,
        "parquet",
        "CN",
    )
    assert manifest["counts"] == world.counts
    assert world.counts["truth_rings"] == len(world.rings)
    assert world.counts["truth_fraud_accounts"] == sum(world.fraud.values())


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        _run(tmp_path, 100, 1, "json")
    with pytest.raises(ValueError, match="accounts"):
        _run(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="region"):
        _run(tmp_path, 100, 1, default_region="XX")
