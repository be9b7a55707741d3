"""Typed shorthands the schema's modules share: the resolver ``info`` and field decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
from strawberry.types import Info

from ringscope.api.context import RequestContext

Ctx = Info[RequestContext, None]
F = TypeVar("F", bound=Callable[..., Any])


def typed_field(**kwargs: Any) -> Callable[[F], F]:
    """``strawberry.field`` as a typed decorator (its keyword form is untyped for mypy)."""
    return cast("Callable[[F], F]", strawberry.field(**kwargs))


def typed_mutation(**kwargs: Any) -> Callable[[F], F]:
    """``strawberry.mutation`` as a typed decorator."""
    return cast("Callable[[F], F]", strawberry.mutation(**kwargs))
