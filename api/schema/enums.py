"""The schema's enums. ``EntityKind`` is derived from the kinds table, so a new kind is in the
API without an edit here (its members and their order are those of ``ringscope.kinds.KINDS``)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, cast

import strawberry

from ringscope.api.auth import Capability as _Capability
from ringscope.kinds import KINDS


def _entity_kind() -> type[enum.Enum]:
    members = [(k.name.upper(), k.name) for k in KINDS]
    derived = cast("type[enum.Enum]", enum.Enum("EntityKind", members, module=__name__))
    return strawberry.enum(derived, description="The kind of an entity (ringscope/kinds.py).")


if TYPE_CHECKING:

    class EntityKind(enum.Enum):
        """One member per kind of ``ringscope.kinds.KINDS`` (``DEVICE = "device"``, ...)."""

else:
    EntityKind = _entity_kind()


@strawberry.enum(description="An investigator's verdict.")
class VerdictValue(enum.Enum):
    FRAUD = "fraud"
    LEGIT = "legit"


# The roles' capabilities (api/auth.py), by name: what a key may do, so that a client (the
# workbench) shows only the controls its key may use. The server still refuses the rest.
strawberry.enum(_Capability, description="What an API key's role may do.")
Capability = _Capability
