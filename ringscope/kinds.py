"""The one table of entity kinds: everything that varies by kind is read from here.

Why one table: the kinds used to be listed in seven places (the graph model, the data contract,
the generator, the detector's weights, the cluster reasons twice, the GraphQL enum). Forget one
and a new kind silently linked nothing, or a rebuild died with a KeyError. Now each of those
places derives what it needs from :data:`KINDS`, and ``tests/test_kinds.py`` fails loudly when a
derived place lacks a kind.

Derived from this table:

- the Neo4j label and the relationship type from ``Account`` (``graph.cypher``: constraints,
  counts, the detector's reads, the API's neighbourhood);
- the data contract: which kinds arrive through ``account_identifiers`` rows
  (``ingest.contract.IDENTIFIER_KINDS``); the others have tables of their own;
- linking: the weight of one shared identifier, the degree cap above which it is a hub, and the
  time floor of kinds that are reissued to strangers (``models.detect.DetectConfig``);
- whether a value is PII (masked in the API for roles that may not see it) and whether it is
  *personal* (one person's: sharing it is strong evidence, ``personal_shared_share``) or a
  *place* (shared by whoever is there: ``place_coverage``);
- the words the cluster reasons use;
- the GraphQL ``EntityKind`` enum.

What is not here: each kind's normaliser (``ingest.normalise.VALUE_NORMALISERS`` for the kinds
that arrive as ``account_identifiers`` rows; the dedicated tables parse their own columns).

Adding a kind (a crypto wallet address, say) is one row below, plus its normaliser, plus, if
wanted, the generator; ``docs/architecture.md`` walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LinkTable = Literal["account_devices", "account_phones", "payments", "account_identifiers"]


@dataclass(frozen=True)
class Kind:
    """One kind of entity: an account, or an identifier accounts can share."""

    name: str  # in the API, the data contract and the code
    label: str  # Neo4j node label
    rel: str | None  # relationship type from Account; None for Account itself
    pii: bool  # masked in the API for roles that may not see raw PII
    words: tuple[str, str] = ("", "")  # singular and plural, as the cluster reasons say them
    # How rows of this kind arrive: the contract table that links accounts to it.
    link_table: LinkTable | None = None
    # Linking. The weight of one shared identifier used by exactly two accounts (it falls with
    # the identifier's degree); more accounts than degree_cap make it a hub, left out of
    # linking. time_floor: for kinds reissued to strangers (numbers recycled, IPs reassigned,
    # devices resold), the share of the weight a pair keeps when their use never overlapped in
    # time; None means the kind is not time-aware (full weight).
    weight: float = 0.0
    degree_cap: int = 0
    time_floor: float | None = None
    # One person's (a document, a card, an email): sharing it is strong evidence of one owner.
    personal: bool = False
    # A place (an IP, a device): shared by whoever is there, e.g. a family or an office.
    place: bool = False
    # Where the kind's sentence comes among a cluster's shared-identifier reasons (lower first):
    # the tangible things an investigator can check (a device, a number) lead.
    cite_rank: int = 0
    # The entity table's boolean column that marks the identifier for the account model (an
    # emulator device, a virtual number): what a screening event's details may state.
    flag: str | None = None


ACCOUNT = Kind("account", "Account", None, pii=False, words=("account", "accounts"))
DEVICE = Kind(
    "device",
    "Device",
    "USES_DEVICE",
    pii=False,
    words=("device", "devices"),
    link_table="account_devices",
    weight=0.8,
    degree_cap=50,
    time_floor=0.4,
    place=True,
    cite_rank=0,
    flag="is_emulator",
)
PHONE = Kind(
    "phone",
    "Phone",
    "HAS_PHONE",
    pii=True,
    words=("phone number", "phone numbers"),
    link_table="account_phones",
    weight=0.8,
    degree_cap=50,
    time_floor=0.2,
    cite_rank=1,
    flag="is_virtual",
)
PAYEE = Kind(
    "payee",
    "Payee",
    "PAID",
    pii=False,
    words=("payee", "payees"),
    link_table="payments",
    weight=0.3,
    degree_cap=60,
    cite_rank=6,
)
IP = Kind(
    "ip",
    "IP",
    "USES_IP",
    # Personal data under the GDPR (it can identify a household), so masked like a phone for
    # roles without raw PII; the masked key still links it across answers (docs/api.md).
    pii=True,
    words=("IP address", "IP addresses"),
    link_table="account_identifiers",
    weight=0.35,
    degree_cap=200,
    time_floor=0.3,
    place=True,
    cite_rank=5,
)
EMAIL = Kind(
    "email",
    "Email",
    "HAS_EMAIL",
    pii=True,
    words=("email address", "email addresses"),
    link_table="account_identifiers",
    weight=0.8,
    degree_cap=50,
    personal=True,
    cite_rank=4,
)
ID_DOCUMENT = Kind(
    "id_document",
    "IdDocument",
    "HAS_ID_DOCUMENT",
    pii=True,
    words=("ID document", "ID documents"),
    link_table="account_identifiers",
    weight=1.0,
    degree_cap=50,
    personal=True,
    cite_rank=2,
)
BANK_CARD = Kind(
    "bank_card",
    "BankCard",
    "HAS_BANK_CARD",
    pii=True,
    words=("bank card", "bank cards"),
    link_table="account_identifiers",
    weight=0.9,
    degree_cap=50,
    personal=True,
    cite_rank=3,
)

# The order is significant: it is the order of the learned model's feature columns and of the
# GraphQL enum. Append new kinds at the end.
KINDS: tuple[Kind, ...] = (ACCOUNT, DEVICE, PHONE, PAYEE, IP, EMAIL, ID_DOCUMENT, BANK_CARD)
IDENTIFIER_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.rel is not None)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
