"""The graph model in code: which node labels and relationship types RingScope writes.

``docs/graph-model.md`` explains each one; this table is what the schema, the loader and the
readers are generated from, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One kind of entity: its name in the API and data contract, its label, its link type."""

    name: str
    label: str
    rel: str | None  # relationship type from Account; None for Account itself
    pii: bool  # masked in the API for roles that may not see raw PII


ACCOUNT = Kind("account", "Account", None, pii=False)
DEVICE = Kind("device", "Device", "USES_DEVICE", pii=False)
PHONE = Kind("phone", "Phone", "HAS_PHONE", pii=True)
PAYEE = Kind("payee", "Payee", "PAID", pii=False)
IP = Kind("ip", "IP", "USES_IP", pii=False)
EMAIL = Kind("email", "Email", "HAS_EMAIL", pii=True)
ID_DOCUMENT = Kind("id_document", "IdDocument", "HAS_ID_DOCUMENT", pii=True)
BANK_CARD = Kind("bank_card", "BankCard", "HAS_BANK_CARD", pii=True)

KINDS: tuple[Kind, ...] = (ACCOUNT, DEVICE, PHONE, PAYEE, IP, EMAIL, ID_DOCUMENT, BANK_CARD)
IDENTIFIER_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.rel is not None)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
