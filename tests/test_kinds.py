"""The one table of kinds (ringscope.kinds): every place that varies by kind derives from it, and
this test fails loudly, naming the place, when one of them leaves a kind out.

The second test adds a kind ("wallet", arriving as account_identifiers rows) to the table in a
fresh interpreter, gives it a normaliser, and checks that every derived place then has it: adding
a kind touches only the table, its normaliser and, if wanted, the generator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ringscope import kinds


def derived_places() -> dict[str, set[str]]:
    """Per place that varies by kind, the kind names it covers. Imported here, not at module top,
    so that the subprocess test can patch the table first."""
    from ringscope.api.schema import EntityKind
    from ringscope.graph import cypher
    from ringscope.ingest import contract
    from ringscope.ingest.normalise import VALUE_NORMALISERS
    from ringscope.models import clusters
    from ringscope.models.detect import DetectConfig
    from ringscope.models.features import FEATURE_SCHEMA
    from ringscope.models.projection import KIND_NAMES

    config = DetectConfig()
    by_rel = {k.rel: k.name for k in kinds.IDENTIFIER_KINDS}
    schema = " ".join(cypher.SCHEMA)
    tables = {t.name for t in contract.TABLES}
    return {
        "graph schema (a uniqueness constraint per label)": {
            k.name for k in kinds.KINDS if f":{k.label})" in schema
        },
        "detector's reads (cypher.DETECT_LINKS)": {by_rel[r] for r in cypher.DETECT_LINKS},
        "contract: link table of each identifier kind": {
            k.name for k in kinds.IDENTIFIER_KINDS if k.link_table in tables
        },
        "contract: account_identifiers kinds have a normaliser": {
            *(k.name for k in kinds.IDENTIFIER_KINDS if k.name not in contract.IDENTIFIER_KINDS),
            *(n for n in contract.IDENTIFIER_KINDS if n in VALUE_NORMALISERS),
        },
        "link weights": set(config.kind_weights),
        "degree caps": set(config.degree_caps),
        "cluster reasons' words": {n for n, w in clusters.KIND_WORDS.items() if all(w)},
        "cluster reasons' order": set(clusters.CITE_ORDER),
        "projection": set(KIND_NAMES),
        "model features": set(FEATURE_SCHEMA.kinds),
        "GraphQL EntityKind": {e.value for e in EntityKind},
    }


def check(places: dict[str, set[str]]) -> list[str]:
    """What each place lacks (or has beyond the table), as readable lines."""
    every = {k.name for k in kinds.KINDS}
    identifiers = {k.name for k in kinds.IDENTIFIER_KINDS}
    problems = []
    for place, covered in places.items():
        expected = every if place.startswith(("graph schema", "GraphQL")) else identifiers
        if covered != expected:
            problems.append(
                f"{place}: lacks {sorted(expected - covered)}, extra {sorted(covered - expected)}"
            )
    return problems


def test_every_derived_place_covers_every_kind() -> None:
    assert check(derived_places()) == []


def test_the_table_is_consistent() -> None:
    assert len(kinds.BY_NAME) == len(kinds.KINDS)
    assert len({k.label for k in kinds.KINDS}) == len(kinds.KINDS)
    assert len({k.rel for k in kinds.IDENTIFIER_KINDS}) == len(kinds.IDENTIFIER_KINDS)
    for k in kinds.IDENTIFIER_KINDS:
        assert k.link_table is not None, k.name
        assert k.weight > 0 and k.degree_cap >= 2, k.name
        assert k.time_floor is None or 0.0 <= k.time_floor < 1.0, k.name
        assert all(k.words), k.name
    ranks = [k.cite_rank for k in kinds.IDENTIFIER_KINDS]
    assert len(set(ranks)) == len(ranks)


ADD_A_WALLET = """
import json, sys
sys.path.insert(0, {tests!r})
from pathlib import Path

from ringscope import kinds
wallet = kinds.Kind(
    "wallet", "Wallet", "HAS_WALLET", pii=True, words=("wallet address", "wallet addresses"),
    link_table="account_identifiers", weight=0.9, degree_cap=50, personal=True, cite_rank=7,
)
kinds.KINDS = (*kinds.KINDS, wallet)
kinds.IDENTIFIER_KINDS = (*kinds.IDENTIFIER_KINDS, wallet)
kinds.BY_NAME["wallet"] = wallet
import ringscope.ingest.normalise as normalise
normalise.VALUE_NORMALISERS["wallet"] = normalise._lower  # the kind's normaliser
import test_kinds
places = test_kinds.derived_places()
print(json.dumps({{"problems": test_kinds.check(places),
                  "has_wallet": sorted(p for p, c in places.items() if "wallet" in c)}}))
"""


def test_adding_a_kind_touches_only_the_table_and_its_normaliser() -> None:
    code = ADD_A_WALLET.format(tests=str(Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    assert len(result["has_wallet"]) == len(derived_places())
