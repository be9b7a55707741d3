"""The schema assembled: the root types, the query limits, error masking, and its SDL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from ringscope.api.cost import CostModel, QueryLimits, depth_rule, field_costs
from ringscope.api.execution import LeafObjectExecutionContext
from ringscope.api.ratelimit import KeyBuckets
from ringscope.api.schema.mutations import Mutation
from ringscope.api.schema.queries import Query
from ringscope.errors import RingScopeError
from ringscope.settings import Settings

log = logging.getLogger("ringscope.api")


def should_mask(error: GraphQLError) -> bool:
    """Mask unexpected errors (and log them); show GraphQL's and named domain errors."""
    original = error.original_error
    unexpected = original is not None and not isinstance(original, RingScopeError | GraphQLError)
    if unexpected and original is not None:
        log.error("unexpected error in %s", error.path, exc_info=original)
    return unexpected


class RingScopeSchema(strawberry.Schema):
    """Expected errors (refusals, domain errors, invalid queries) are answers, not log noise;
    unexpected ones are logged by :func:`should_mask` before they are masked.

    ``costs`` is the cost model its limits use; the server asks it too, before execution, where
    to run an operation (api/app.py).
    """

    costs: CostModel

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(settings: Settings | None = None) -> RingScopeSchema:
    """The schema with its limits; introspection off when ``api_env`` is production; leaf-only
    objects completed by api/execution.py unless ``api_fast_leaves`` is off.

    The explain buckets (:mod:`api.ratelimit`) belong to the schema, so one app (one server
    process) has one set of them.
    """
    s = settings or Settings()
    # Factories, so that every request gets fresh extension instances; the parser and
    # validation caches themselves are module-level LRU caches shared by all requests. The
    # validation cache is keyed by the rule classes too, and QueryDepthLimiter and
    # MaxAliasesLimiter make a new rule class per instance: built per request they missed the
    # cache every time (10% of a neighbourhood request's CPU went to validation). Their rules
    # are made once here and added per request. The depth rule is ours (api/cost.py): the
    # limiter's counted one level fewer than the documented limit.
    limits = [
        depth_rule(s.api_max_depth),
        *MaxAliasesLimiter(max_alias_count=s.api_max_aliases).validation_rules,
    ]
    costs = CostModel()
    explain_buckets = KeyBuckets("explain", s.api_explain_burst, s.api_explain_per_minute)
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(MaxTokensLimiter, max_token_count=s.api_max_tokens),
        partial(ParserCache, maxsize=1_000),
        partial(ValidationCache, maxsize=1_000),
        partial(AddValidationRules, limits),
        # The cost depends on the variables (page sizes), so it is worked out per request,
        # once the document is parsed and validated, before any resolver runs.
        partial(QueryLimits, s.api_max_cost, costs, explain_buckets),
        partial(MaskErrors, should_mask_error=should_mask, error_message="Internal server error."),
    ]
    if s.api_env == "production":
        extensions.append(DisableIntrospection)
    schema = RingScopeSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        execution_context_class=LeafObjectExecutionContext if s.api_fast_leaves else None,
    )
    costs.costs.update(field_costs(s, schema._schema))
    schema.costs = costs
    return schema


def sdl() -> str:
    """The schema's SDL (what api/schema.graphql holds)."""
    return build_schema(Settings()).as_str() + "\n"
