"""The input data contract (v1): which tables exist, their columns, and why a row can be refused.

``docs/data-contract.md`` is the prose version of this module; the loader, the readers and the
quarantine reasons all come from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ringscope.errors import RingScopeError
from ringscope.kinds import KINDS

CONTRACT_VERSION = 1

# File extensions a table may come in, and the format each means.
FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}


class IngestError(RingScopeError):
    """A load could not run at all (as opposed to single rows that were quarantined)."""


class IngestFormatError(IngestError):
    """A whole file is unreadable: wrong format, or a required column is missing."""


class MappingError(IngestError):
    """A mapping file is invalid."""


class Reason(StrEnum):
    """Why a row was quarantined. The values appear in the quarantine file."""

    MISSING_KEY = "missing key"
    MISSING_VALUE = "missing value"
    MALFORMED_ROW = "malformed row"
    UNPARSEABLE_TIMESTAMP = "unparseable timestamp"
    UNPARSEABLE_AMOUNT = "unparseable amount"
    NEGATIVE_AMOUNT = "negative amount"
    UNPARSEABLE_PHONE = "unparseable phone"
    UNKNOWN_ACCOUNT = "unknown account"
    UNKNOWN_LABEL = "unknown label"
    UNKNOWN_KIND = "unknown kind"
    INVALID_VALUE = "invalid value"
    DUPLICATE_PAYMENT = "duplicate payment_id with different content"
    KEY_TOO_LONG = "key too long"
    CONTROL_CHARACTER = "control character"
    TIMESTAMP_OUT_OF_RANGE = "timestamp out of range"


@dataclass(frozen=True)
class Table:
    """One contract table. ``required`` columns must be in the file's header (or it fails fast);
    ``keys`` must be non-empty on every row (or the row is quarantined as a missing key)."""

    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    keys: tuple[str, ...]
    entity: bool  # entity tables keep unknown extra columns as node properties

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.required)


ACCOUNTS = Table(
    "accounts",
    ("account_id", "created_at", "kyc_level", "country"),
    ("account_id",),
    ("account_id",),
    entity=True,
)
DEVICES = Table("devices", ("device_id", "os", "is_emulator"), ("device_id",), ("device_id",), True)
PHONES = Table("phones", ("phone", "carrier", "is_virtual"), ("phone",), ("phone",), True)
PAYEES = Table("payees", ("payee_id", "kind", "name"), ("payee_id",), ("payee_id",), True)
LABELS = Table(
    "labels",
    ("account_id", "label", "labelled_at"),
    ("account_id", "label"),
    ("account_id",),
    entity=False,
)
ACCOUNT_DEVICES = Table(
    "account_devices",
    ("account_id", "device_id", "seen_at"),
    ("account_id", "device_id"),
    ("account_id", "device_id"),
    entity=False,
)
ACCOUNT_PHONES = Table(
    "account_phones",
    ("account_id", "phone", "seen_at"),
    ("account_id", "phone"),
    ("account_id", "phone"),
    entity=False,
)
PAYMENTS = Table(
    "payments",
    ("payment_id", "account_id", "payee_id", "amount", "currency", "paid_at"),
    ("payment_id", "account_id", "payee_id", "amount"),
    ("payment_id", "account_id", "payee_id"),
    entity=False,
)
ACCOUNT_IDENTIFIERS = Table(
    "account_identifiers",
    ("account_id", "kind", "value", "seen_at"),
    ("account_id", "kind", "value"),
    ("account_id", "value"),
    entity=False,
)

# In load order: entity tables (nodes) first, then labels, then the link tables (relationships).
TABLES: tuple[Table, ...] = (
    ACCOUNTS,
    DEVICES,
    PHONES,
    PAYEES,
    LABELS,
    ACCOUNT_DEVICES,
    ACCOUNT_PHONES,
    PAYMENTS,
    ACCOUNT_IDENTIFIERS,
)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

KYC_LEVELS = (0, 1, 2, 3)
PAYEE_KINDS = ("merchant", "individual")
LABEL_VALUES = ("fraud", "legit")
# The kinds that arrive as account_identifiers rows (its `kind` column names them), from the
# kinds table; the others have tables of their own.
IDENTIFIER_KINDS: tuple[str, ...] = tuple(
    k.name for k in KINDS if k.link_table == ACCOUNT_IDENTIFIERS.name
)
# The longest key value accepted, in characters. Keys become indexed node ids (the uniqueness
# constraints), and Neo4j refuses an index entry over 8,167 bytes mid-transaction, after earlier
# batches committed; 512 characters are at most 2,048 bytes of UTF-8, far below that, and far
# above any real id, phone, email (254 at most), IP, card or document number.
MAX_KEY_CHARS = 512
# Key values may not hold control characters (C0, DEL, C1): a NUL or a bell in an id is a
# corrupt export, and such ids print as invisible twins of real ones.
CONTROL_CHARACTERS = r"[\x{00}-\x{1f}\x{7f}-\x{9f}]"
# Timestamps are accepted from 1970-01-01 (inclusive) to 2100-01-01 (exclusive), UTC: outside
# that no real account, login or payment happened, the far edges (year 1 or 9999) overflow
# Python's datetime once converted to UTC, and placeholder dates (0001-01-01, 9999-12-31) would
# otherwise distort first_seen / last_seen.
TIMESTAMP_MIN = "1970-01-01T00:00:00+00:00"
TIMESTAMP_MAX = "2100-01-01T00:00:00+00:00"
# Money is kept exactly as integers of 1/10 000 of the currency unit.
AMOUNT_SCALE = 4
# A payment is "round" when its amount is a positive multiple of this many currency units.
ROUND_UNIT = 100
