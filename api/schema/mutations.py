"""The Mutation root: investigators' verdicts and case notes (append-only, kept across builds)."""

from __future__ import annotations

import strawberry

from ringscope.api import service
from ringscope.api.schema.enums import VerdictValue
from ringscope.api.schema.fields import Ctx, typed_mutation
from ringscope.api.schema.permissions import CanWriteLabels
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
