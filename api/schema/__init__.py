"""The GraphQL schema: thin Strawberry types over :mod:`api.service`, per-field permissions.

Resolvers only translate: they call the service layer (through the request's DataLoaders for
anything per-item), mask personal data for roles that may not see it, and record every entity
they return or refuse in the request's audit buffer. ``docs/api.md`` documents the schema;
``api/schema.graphql`` is its committed SDL.

The parts: :mod:`.types` (object types), :mod:`.neighbourhood` and :mod:`.explanation` (those
answers' types), :mod:`.enums`, :mod:`.permissions`, :mod:`.queries` and :mod:`.mutations` (the
roots), :mod:`.assembly` (limits, error masking, the SDL). Import from here.
"""

from ringscope.api.schema.assembly import RingScopeSchema, build_schema, sdl, should_mask
from ringscope.api.schema.enums import EntityKind, VerdictValue
from ringscope.api.schema.mutations import Mutation
from ringscope.api.schema.queries import Query

__all__ = [
    "EntityKind",
    "Mutation",
    "Query",
    "RingScopeSchema",
    "VerdictValue",
    "build_schema",
    "sdl",
    "should_mask",
]
