"""The data contract's tables as the generator writes them: their Arrow schemas (contract v1)."""

from __future__ import annotations

import pyarrow as pa

CONTRACT_VERSION = "v1"

_TS = pa.timestamp("us", tz="UTC")
_AMOUNT = pa.decimal128(18, 2)
SCHEMAS: dict[str, pa.Schema] = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("created_at", _TS),
            ("kyc_level", pa.int8()),
            ("country", pa.string()),
        ]
    ),
    "devices": pa.schema(
        [("device_id", pa.string()), ("os", pa.string()), ("is_emulator", pa.bool_())]
    ),
    "phones": pa.schema(
        [("phone", pa.string()), ("carrier", pa.string()), ("is_virtual", pa.bool_())]
    ),
    "payees": pa.schema([("payee_id", pa.string()), ("kind", pa.string()), ("name", pa.string())]),
    "account_devices": pa.schema(
        [("account_id", pa.string()), ("device_id", pa.string()), ("seen_at", _TS)]
    ),
    "account_phones": pa.schema(
        [("account_id", pa.string()), ("phone", pa.string()), ("seen_at", _TS)]
    ),
    "payments": pa.schema(
        [
            ("payment_id", pa.string()),
            ("account_id", pa.string()),
            ("payee_id", pa.string()),
            ("amount", _AMOUNT),
            ("currency", pa.string()),
            ("paid_at", _TS),
        ]
    ),
    "account_identifiers": pa.schema(
        [
            ("account_id", pa.string()),
            ("kind", pa.string()),
            ("value", pa.string()),
            ("seen_at", _TS),
        ]
    ),
    "labels": pa.schema(
        [("account_id", pa.string()), ("label", pa.string()), ("labelled_at", _TS)]
    ),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)
ID_KINDS: tuple[str, ...] = ("ip", "email", "id_document", "bank_card")
