"""The Mutation root: investigators' verdicts and case notes (append-only, kept across builds),
and the risk engine's events recorded into the graph."""

from __future__ import annotations

import strawberry

from ringscope.api import service
from ringscope.api.schema.enums import VerdictValue
from ringscope.api.schema.fields import Ctx, typed_mutation
from ringscope.api.schema.permissions import CanRecordEvents, CanWriteLabels
from ringscope.api.schema.screening import (
    RecordEventsResult,
    ScreenEvent,
    to_event,
    to_record_result,
)
from ringscope.api.schema.types import CaseNote, Verdict


@strawberry.type
class Mutation:
    @typed_mutation(
        permission_classes=[CanWriteLabels],
        description="Record a verdict on an account (author: the API key's name).",
    )
    async def label_account(
        self, info: Ctx, account_id: strawberry.ID, verdict: VerdictValue, note: str
    ) -> Verdict:
        ctx = info.context
        v = await ctx.run(
            service.label_account, ctx.graph, str(account_id), verdict.value, note, ctx.principal
        )
        ctx.returned("account", str(account_id), "labelAccount")
        return Verdict.of(v)

    @typed_mutation(
        permission_classes=[CanWriteLabels],
        description="Record a verdict on a ring (cluster id or ring id), kept across builds.",
    )
    async def label_cluster(
        self, info: Ctx, cluster_id: strawberry.ID, verdict: VerdictValue, note: str
    ) -> Verdict:
        ctx = info.context
        v, c = await ctx.run(
            service.label_cluster, ctx.graph, str(cluster_id), verdict.value, note, ctx.principal
        )
        ctx.returned("cluster", c.id, "labelCluster")
        return Verdict.of(v)

    @typed_mutation(
        permission_classes=[CanWriteLabels],
        description="Add a case note to a ring (cluster id or ring id), kept across builds.",
    )
    async def add_case_note(self, info: Ctx, cluster_id: strawberry.ID, text: str) -> CaseNote:
        ctx = info.context
        n, c = await ctx.run(service.add_case_note, ctx.graph, str(cluster_id), text, ctx.principal)
        ctx.returned("cluster", c.id, "addCaseNote")
        return CaseNote.of(n)

    @typed_mutation(
        permission_classes=[CanRecordEvents],
        description="Write events into the graph through the loader's code and ledger, "
        f"idempotent by eventId (at most {service.MAX_RECORD_EVENTS} per call). The next "
        "screen sees them; the next rebuild includes them.",
    )
    async def record_events(self, info: Ctx, events: list[ScreenEvent]) -> RecordEventsResult:
        ctx = info.context
        out = await ctx.run(
            service.record_events,
            ctx.graph,
            [to_event(e) for e in events],
            region=ctx.settings.default_region,
        )
        for e in events:
            eid = str(e.event_id)
            outcome = "recorded" if eid in out.recorded else "duplicate"
            ctx.audit.add("event", eid, outcome, "recordEvents", event_id=eid)
            ctx.audit.add("account", str(e.account_id), "written", "recordEvents", event_id=eid)
        return to_record_result(out)
