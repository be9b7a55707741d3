"""Per-field permissions: each needs one capability of the caller's role; a refusal is audited."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from strawberry.permission import BasePermission

from ringscope.api.auth import Capability
from ringscope.api.schema.fields import Ctx


@runtime_checkable
class Audited(Protocol):
    """A schema object that says what it is about, for the audit log of a refused field."""

    def audit_target(self) -> tuple[str, str]: ...


def _target(source: Any, info: Ctx, kwargs: dict[str, Any]) -> tuple[str, str]:
    """What a refused field was about, for the audit log."""
    if "account_id" in kwargs:
        return "account", str(kwargs["account_id"])
    if "event" in kwargs:
        return "event", str(kwargs["event"].event_id)
    if "events" in kwargs:
        return "event", ",".join(str(e.event_id) for e in kwargs["events"])[:128]
    if "cluster_id" in kwargs:
        return "cluster", str(kwargs["cluster_id"])
    if "id" in kwargs and "kind" in kwargs:
        return str(kwargs["kind"].value), str(kwargs["id"])
    if isinstance(source, Audited):
        return source.audit_target()
    return "field", info.field_name


class _Requires(BasePermission):
    capability: ClassVar[Capability]

    def has_permission(self, source: Any, info: Ctx, **kwargs: Any) -> bool:
        ctx = info.context
        if ctx.principal.can(self.capability):
            return True
        kind, eid = _target(source, info, kwargs)
        ctx.audit_denied(kind, eid, info.field_name)
        return False


class CanReadScores(_Requires):
    capability = Capability.READ_SCORES
    message = "Forbidden: this API key's role may not read scores, clusters or builds."


class CanReadEntities(_Requires):
    capability = Capability.READ_ENTITIES
    message = "Forbidden: this API key's role may not read entities or neighbourhoods."


class CanReadCases(_Requires):
    capability = Capability.READ_CASES
    message = "Forbidden: this API key's role may not read verdicts or case notes."


class CanWriteLabels(_Requires):
    capability = Capability.WRITE_LABELS
    message = "Forbidden: this API key's role may not write verdicts or case notes."


class CanManageKeys(_Requires):
    capability = Capability.MANAGE_KEYS
    message = "Forbidden: only the admin role may manage API keys."


class CanScreenEvents(_Requires):
    capability = Capability.SCREEN_EVENTS
    message = "Forbidden: this API key's role may not screen events."


class CanRecordEvents(_Requires):
    capability = Capability.RECORD_EVENTS
    message = "Forbidden: this API key's role may not record events."
