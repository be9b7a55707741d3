"""Query limits checked before a resolver runs: depth, cost, and ``explain`` calls.

**Depth.** The number of nested field levels: ``{ currentBuild { id } }`` is 2 deep. Queries
deeper than ``api_max_depth`` are refused by a validation rule (cached with the document, like
every validation). Introspection fields (``__schema``, ``__type``, ``__typename``) are not
counted: the standard introspection query is 13 levels deep. Their fan-out is in the cost.

**Cost.** An upper bound on the fields a query can resolve, worked out from the document and
its variables before execution (issue #19: a nine-level ``members { clusters { members ... }}}``
query passed the depth, alias and token limits and froze the server for 17.8 s). Every field
costs its *weight* (1, more for fields that read Neo4j or run a model), and a list field
multiplies everything selected under it by the most items it can return: its ``first``
argument (or its default), the parent's page size (a connection's ``edges``), or a bound the
data has (``degrees``: one per kind). So ``clusters(first: 500) { edges { node { members {
id } } } }`` costs about 500 x 100 (the default member page) and nesting multiplies: the
whole operation, every alias and fragment spread counted, must stay within ``api_max_cost``.

The bound is what may come back, not what will: a ring of 26 members asked for ``members``
costs the page size of 100. A client that knows its answers are small asks for small pages
(``members(first: 30)``) and pays for those. Every list field of the schema has a size here:
``tests/test_api_py`` fails on a list field without one.

**explain** runs the account model on a neighbourhood (seconds, on a hub-linked account), so it
weighs :data:`EXPLAIN_COST`, an operation may call it at most once, and each key has a token
bucket of them (:mod:`api.ratelimit`; refused with HTTP 429 and ``Retry-After``).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    BooleanValueNode,
    DocumentNode,
    EnumValueNode,
    ExecutionResult,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    StringValueNode,
    TypeMetaFieldDef,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    parse,
)
from strawberry.extensions import SchemaExtension

from ringscope.api import service
from ringscope.api.auth import Capability
from ringscope.api.ratelimit import KeyBuckets, RateLimitedError
from ringscope.api.service import LimitExceededError
from ringscope.ingest.events import EVENT_FIELDS, MAX_EVENT_VALUES
from ringscope.kinds import KINDS
from ringscope.settings import Settings

Args = Mapping[str, Any]
# (the field's arguments, its parent field's arguments) -> the most items a list field returns
Size = Callable[[Args, Args], int]
Weight = Callable[[Args], int]

EXPLAIN_COST = 20_000
"""What one ``explain`` weighs: a tenth of the default budget (it reads up to 5,000 accounts
and runs the model on them, where a field completion is microseconds)."""
NEO4J_READ_COST = 10
SCREEN_COST = 100
"""What one ``screen`` weighs: a few reads of one neighbourhood (capped by the tree's
hub_degree) and one model row, milliseconds; the risk engine calls it per decision."""
# The most identifiers an event's answer can list: every list of every kind full, plus a payee.
EVENT_VALUES = len(EVENT_FIELDS) * MAX_EVENT_VALUES + 1
"""A root field's own read (one Neo4j round trip, before any of its fields)."""

# Bounds the data has, for lists without a `first` argument (their size is set by the build's
# writer or the schema, never by a client): reasons are at most 3 sentences, a cluster has ~20
# features, a path has at most 2 * hops + 1 nodes.
STATIC_SIZES = {"reasons": 10, "features": 40, "path": 7, "via": 3, "paths": 20}


@dataclass(frozen=True)
class Page:
    """A list field's ``first`` argument: its default and the most it may ask for."""

    default: int
    max: int

    def check(self, n: int, field: str, arg: str = "first") -> int:
        """``n`` if it is in range, else a named error (the resolvers' check)."""
        if not 1 <= n <= self.max:
            raise LimitExceededError(f"{field}: {arg} is between 1 and {self.max}.")
        return n


# The page sizes of list fields (`last` for the lists kept oldest first, whose latest items
# count most). The defaults cover the answers these lists give today (a cluster has at most 80
# members with the detector's defaults, an identifier ties a few clusters), so only outsized
# answers are cut; `size` and the like say how many there are.
CLUSTERS = Page(50, 500)  # Query.clusters
MEMBERS = Page(100, 1_000)  # Cluster.members
SHARED = Page(20, 100)  # Cluster.sharedIdentifiers (the detector keeps 5)
HISTORY = Page(20, 100)  # Cluster.history (every stored build)
VERDICTS = Page(20, 500)  # Cluster.labels, Entity.verdicts (append-only)
NOTES = Page(20, 500)  # Cluster.notes (append-only)
ENTITY_CLUSTERS = Page(50, 500)  # Entity.clusters (a shared office IP ties a thousand)
API_KEYS = Page(1_000, 10_000)  # Query.apiKeys (admin only)
EXPLAIN_TOP = Page(5, service.MAX_EXPLAIN_TOP)  # explain(top): topFeatures, identifiers


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _page(arg: str, page: Page) -> Size:
    """A list sized by its own argument (clamped to the argument's range: the resolver refuses
    values outside it with a named error, which is clearer than a cost error)."""
    return lambda args, _parent: max(1, min(_int(args.get(arg), page.max), page.max))


def _parent_page(arg: str, page: Page) -> Size:
    return lambda _args, parent: max(1, min(_int(parent.get(arg), page.max), page.max))


def _static(n: int) -> Size:
    return lambda _args, _parent: n


@dataclass(frozen=True)
class FieldCost:
    weight: int | Weight = 1
    size: Size | None = None  # list fields: the most items


def field_costs(settings: Settings, schema: GraphQLSchema) -> dict[tuple[str, str], FieldCost]:
    """The weight and list size of each field that is not a plain leaf of weight 1."""
    nodes_max = settings.api_neighbourhood_max_nodes

    def nb_nodes(_args: Args, parent: Args) -> int:
        return max(1, min(_int(parent.get("limit"), nodes_max), nodes_max))

    def nb_edges(args: Args, parent: Args) -> int:
        # Each hop's expansion returns at most limit + 1 rows, each one edge.
        return max(1, min(_int(parent.get("hops"), 3), 3)) * (nb_nodes(args, parent) + 1)

    def nb_weight(args: Args) -> int:
        return NEO4J_READ_COST + nb_nodes({}, args)

    read = FieldCost(weight=NEO4J_READ_COST)
    costs: dict[tuple[str, str], FieldCost] = {
        # roots
        ("Query", "entity"): read,
        ("Query", "cluster"): read,
        ("Query", "currentBuild"): read,
        ("Query", "clusters"): read,
        ("Query", "explain"): FieldCost(weight=EXPLAIN_COST),
        ("Query", "riskNeighbourhood"): FieldCost(weight=nb_weight),
        ("Query", "accountRisk"): FieldCost(
            weight=NEO4J_READ_COST,
            size=lambda args, _p: max(1, min(_len(args.get("ids")), service.MAX_ACCOUNT_RISK_IDS)),
        ),
        ("Query", "apiKeys"): FieldCost(weight=NEO4J_READ_COST, size=_page("first", API_KEYS)),
        ("Query", "screen"): FieldCost(weight=SCREEN_COST),
        ("Mutation", "recordEvents"): FieldCost(
            weight=lambda args: (
                NEO4J_READ_COST * max(1, min(_len(args.get("events")), service.MAX_RECORD_EVENTS))
            )
        ),
        ("Mutation", "labelAccount"): read,
        ("Mutation", "labelCluster"): read,
        ("Mutation", "addCaseNote"): read,
        # clusters
        ("ClusterConnection", "edges"): FieldCost(size=_parent_page("first", CLUSTERS)),
        ("Cluster", "members"): FieldCost(size=_page("first", MEMBERS)),
        ("Cluster", "sharedIdentifiers"): FieldCost(size=_page("first", SHARED)),
        ("Cluster", "history"): FieldCost(size=_page("last", HISTORY)),
        ("Cluster", "labels"): FieldCost(size=_page("last", VERDICTS)),
        ("Cluster", "notes"): FieldCost(size=_page("last", NOTES)),
        ("Cluster", "reasons"): FieldCost(size=_static(STATIC_SIZES["reasons"])),
        ("Cluster", "features"): FieldCost(size=_static(STATIC_SIZES["features"])),
        # entities
        ("Entity", "clusters"): FieldCost(size=_page("first", ENTITY_CLUSTERS)),
        ("Entity", "verdicts"): FieldCost(size=_page("last", VERDICTS)),
        ("Entity", "degrees"): FieldCost(size=_static(len(KINDS))),
        ("Viewer", "capabilities"): FieldCost(size=_static(len(Capability))),
        # neighbourhoods and explanations
        ("Neighbourhood", "nodes"): FieldCost(size=nb_nodes),
        ("Neighbourhood", "edges"): FieldCost(size=nb_edges),
        ("Neighbourhood", "paths"): FieldCost(size=_static(STATIC_SIZES["paths"])),
        ("Neighbourhood", "nodesJson"): FieldCost(weight=lambda _a: 10 * nodes_max),
        ("Neighbourhood", "edgesJson"): FieldCost(weight=lambda _a: 6 * 3 * (nodes_max + 1)),
        ("RiskPath", "nodes"): FieldCost(size=_static(STATIC_SIZES["path"])),
        ("RiskPath", "via"): FieldCost(size=_static(STATIC_SIZES["via"])),
        ("Explanation", "topFeatures"): FieldCost(size=_parent_page("top", EXPLAIN_TOP)),
        ("Explanation", "identifiers"): FieldCost(size=_parent_page("top", EXPLAIN_TOP)),
        # screening: an event names at most MAX_EVENT_VALUES values per kind
        ("ScreenResult", "reasons"): FieldCost(size=_static(service.MAX_SCREEN_REASONS)),
        ("ScreenResult", "linkedRings"): FieldCost(size=_static(EVENT_VALUES + 1)),
        ("LinkedRing", "via"): FieldCost(size=_static(EVENT_VALUES + 1)),
        ("ScreenResult", "hubsIgnored"): FieldCost(size=_static(EVENT_VALUES)),
        ("ScreenResult", "velocity"): FieldCost(size=_static(EVENT_VALUES)),
        ("ScreenResult", "invalidFields"): FieldCost(size=_static(EVENT_VALUES + 3)),
        ("RecordEventsResult", "recorded"): FieldCost(size=_parent_events),
        ("RecordEventsResult", "duplicates"): FieldCost(size=_parent_events),
        ("RecordEventsResult", "invalidFields"): FieldCost(
            size=lambda a, p: _parent_events(a, p) * (EVENT_VALUES + 3)
        ),
    }
    costs.update(_introspection_sizes(schema))
    return costs


def _parent_events(_args: Args, parent: Args) -> int:
    return max(1, min(_len(parent.get("events")), service.MAX_RECORD_EVENTS))


def _len(value: Any) -> int:
    if isinstance(value, list | tuple):
        return len(value)
    return 1  # a single value is coerced into a list of one


def _introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], FieldCost]:
    """Introspection lists, sized by this schema's averages (fields per type, arguments per
    field...), rounded up. Its answers depend on the schema only, never on data; graphql-core's
    MaxIntrospectionDepthRule refuses ``fields { type { fields { type { fields ...`` nested
    more than three lists deep, and production turns introspection off. With the maxima the
    standard introspection query (GraphiQL's) would cost more than the whole budget."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInputObjectType)]
    fields = [f for t in with_fields for f in t.fields.values()]
    enums = [t for t in types if isinstance(t, GraphQLEnumType)]

    def avg(total: int, count: int) -> FieldCost:
        return FieldCost(size=_static(max(1, -(-total // max(1, count)))))

    directives = list(schema.directives)
    return {
        ("__Schema", "types"): avg(len(types), 1),
        ("__Schema", "directives"): avg(len(directives), 1),
        ("__Type", "fields"): avg(len(fields), len(with_fields)),
        ("__Type", "inputFields"): avg(len(fields), len(with_fields)),
        ("__Type", "enumValues"): avg(sum(len(t.values) for t in enums), len(enums)),
        ("__Type", "interfaces"): avg(1, 1),
        ("__Type", "possibleTypes"): avg(1, 1),
        ("__Field", "args"): avg(sum(len(getattr(f, "args", {})) for f in fields), len(fields)),
        ("__Directive", "args"): avg(sum(len(d.args) for d in directives), len(directives)),
        ("__Directive", "locations"): avg(
            sum(len(d.locations) for d in directives), len(directives)
        ),
    }


# --- depth ------------------------------------------------------------------------------------


def depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """A validation rule refusing operations nested deeper than ``max_depth`` field levels.

    Strawberry's ``QueryDepthLimiter`` counted the root field as level 0, so with a limit of 10
    it accepted 11 levels (issue #19). Here the root field is level 1, as docs/api.md says.
    """

    class MaxDepthRule(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                d.name.value: d
                for d in self.context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            name = node.name.value if node.name else "anonymous"
            try:
                depth = _depth(node.selection_set, fragments, {}, frozenset())
            except RecursionError:  # fragments spread in fragments, hundreds deep
                self.report_error(
                    GraphQLError(f"'{name}' nests fragments too deeply to be measured.", node)
                )
                return
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"'{name}' exceeds maximum operation depth of {max_depth}: it nests "
                        f"fields {depth} levels deep (RINGSCOPE_API_MAX_DEPTH).",
                        node,
                    )
                )

    return MaxDepthRule


def _depth(
    sel: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    memo: dict[str, int],
    visiting: frozenset[str],
) -> int:
    deepest = 0
    for s in sel.selections:
        if isinstance(s, FieldNode):
            if s.name.value.startswith("__"):
                continue
            below = _depth(s.selection_set, fragments, memo, visiting) if s.selection_set else 0
            deepest = max(deepest, 1 + below)
        elif isinstance(s, InlineFragmentNode):
            deepest = max(deepest, _depth(s.selection_set, fragments, memo, visiting))
        elif isinstance(s, FragmentSpreadNode):
            name = s.name.value
            frag = fragments.get(name)
            if frag is None or name in visiting:
                continue  # unknown or cyclic: other validation rules report it
            if name not in memo:
                memo[name] = _depth(frag.selection_set, fragments, memo, visiting | {name})
            deepest = max(deepest, memo[name])
    return deepest


# --- cost -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    cost: int | None
    explains: int


class _Coster:
    """Works out an operation's cost: each selection set's cost per item of its parent,
    memoised per (selection set, type, parent field). A fragment spread many times, or spread
    by fragments that are themselves spread many times, is worked out once, so the work grows
    with the document's size, not with the answer's (a "fragment bomb" costs nothing to
    analyse, and its cost is what its answer would be)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        costs: Mapping[tuple[str, str], FieldCost],
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        for v in operation.variable_definitions or ():
            name = v.variable.name.value
            if name not in self.variables and v.default_value is not None:
                self.variables[name] = _literal(v.default_value, {})
        self.costs = costs
        self.memo: dict[tuple[int, str, int], int] = {}

    def selection(
        self,
        sel: SelectionSetNode,
        parent: GraphQLNamedType,
        parent_node: FieldNode | None,
        parent_args: Args,
        visiting: frozenset[str] = frozenset(),
    ) -> int:
        key = (id(sel), parent.name, id(parent_node))
        found = self.memo.get(key)
        if found is not None:
            return found
        total = 0
        for s in sel.selections:
            if isinstance(s, FieldNode):
                total += self.field(s, parent, parent_args)
            elif isinstance(s, InlineFragmentNode):
                t = self._type(s.type_condition.name.value if s.type_condition else None, parent)
                total += self.selection(s.selection_set, t, parent_node, parent_args, visiting)
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is None or name in visiting:
                    continue  # unknown or cyclic: validation has refused the operation
                t = self._type(frag.type_condition.name.value, parent)
                total += self.selection(
                    frag.selection_set, t, parent_node, parent_args, visiting | {name}
                )
        self.memo[key] = total
        return total

    def count(
        self, sel: SelectionSetNode, field: str, memo: dict[str, int], visiting: frozenset[str]
    ) -> int:
        """How many times ``field`` is selected in ``sel`` itself (through fragments, not in
        the fields under it); memoised per fragment, like the cost."""
        n = 0
        for s in sel.selections:
            if isinstance(s, FieldNode):
                n += s.name.value == field
            elif isinstance(s, InlineFragmentNode):
                n += self.count(s.selection_set, field, memo, visiting)
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is None or name in visiting:
                    continue
                if name not in memo:
                    memo[name] = self.count(frag.selection_set, field, memo, visiting | {name})
                n += memo[name]
        return n

    def _type(self, name: str | None, default: GraphQLNamedType) -> GraphQLNamedType:
        found = self.schema.get_type(name) if name else None
        return found or default

    def field(self, node: FieldNode, owner: GraphQLNamedType, parent_args: Args) -> int:
        name = node.name.value
        if name == "__typename":
            return 1
        definition = self._definition(owner, name)
        if definition is None:
            return 1  # an unknown field: validation has refused the operation already
        spec = self.costs.get((owner.name, name), _PLAIN)
        args = self.arguments(definition, node)
        weight = spec.weight(args) if callable(spec.weight) else spec.weight
        items = spec.size(args, parent_args) if spec.size is not None else 1
        if node.selection_set is None:
            return weight + (items if spec.size is not None else 0)
        child = get_named_type(definition.type)
        return weight + items * self.selection(node.selection_set, child, node, args)

    def _definition(self, owner: GraphQLNamedType, name: str) -> GraphQLField | None:
        if owner is self.schema.query_type and name in _META_FIELDS:
            return _META_FIELDS[name]
        fields = getattr(owner, "fields", None)
        return None if fields is None else fields.get(name)

    def arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        given = {a.name.value: a.value for a in node.arguments or ()}
        for name, arg in definition.args.items():
            if name in given:
                out[name] = _literal(given[name], self.variables)
            elif arg.default_value is not Undefined:
                out[name] = arg.default_value
        return out


_META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


_PLAIN = FieldCost()


def _literal(value: ValueNode, variables: Mapping[str, Any]) -> Any:
    """A literal's Python value (variables substituted); only what sizes need to be exact."""
    if isinstance(value, VariableNode):
        return variables.get(value.name.value)
    if isinstance(value, IntValueNode):
        return int(value.value)
    if isinstance(value, FloatValueNode):
        return float(value.value)
    if isinstance(value, StringValueNode | EnumValueNode):
        return value.value
    if isinstance(value, BooleanValueNode):
        return value.value
    if isinstance(value, ListValueNode):
        return [_literal(v, variables) for v in value.values]
    if isinstance(value, NullValueNode):
        return None
    return None


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    costs: Mapping[tuple[str, str], FieldCost],
) -> Analysis:
    """The operation's cost and its number of ``explain`` calls (``None`` cost: fragments
    nested too deeply to work it out, which is refused like a cost over the budget)."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return Analysis(0, 0)
    coster = _Coster(schema, document, operation, variables, costs)
    try:
        explains = (
            coster.count(operation.selection_set, "explain", {}, frozenset())
            if root is schema.query_type
            else 0
        )
        return Analysis(coster.selection(operation.selection_set, root, None, {}), explains)
    except RecursionError:
        return Analysis(None, 0)


class CostModel:
    """The schema's field costs, and the analyses of recent (document, page sizes) pairs.

    A document comes from Strawberry's parser cache, the same object for the same query text,
    and an analysis depends on the variables only through their integers (page sizes) and list
    lengths, so a client that sends one query with new ids each time is analysed once (saving
    30-110 us per request). An entry keeps its document alive, so the document's ``id`` cannot
    be reused by another while the entry exists.
    """

    def __init__(self, maxsize: int = 1_000) -> None:
        self.costs: dict[tuple[str, str], FieldCost] = {}  # filled once the schema exists
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], tuple[DocumentNode, Analysis]] = OrderedDict()

    def analyse(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> Analysis:
        shape = tuple(sorted((k, _shape(v)) for k, v in variables.items()))
        key = (id(document), id(operation), shape)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is document:
                self._cache.move_to_end(key)
                return hit[1]
        found = analyse(schema, document, operation, variables, self.costs)
        with self._lock:
            self._cache[key] = (document, found)
            if len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return found

    def estimate(
        self,
        schema: GraphQLSchema,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        max_tokens: int,
    ) -> int | None:
        """The cost of a request's operation, worked out before Strawberry sees it (the server
        decides from it where the operation runs), or None when this cannot tell: the text does
        not parse within ``max_tokens``, or names no operation it holds, or the analysis fails.
        Not yet validated: an unknown field adds nothing to the price, and validation refuses it
        wherever the operation runs. Strawberry then parses, validates and refuses as always;
        this only reads."""
        document = _parsed(query, max_tokens)
        if document is None:
            return None
        operation = _operation(document, operation_name)
        if operation is None:
            return None
        try:
            return self.analyse(schema, document, operation, variables or {}).cost
        except Exception:  # an invalid document (validation has not run): not ours to report
            return None


@functools.lru_cache(maxsize=1_000)
def _parsed(query: str, max_tokens: int) -> DocumentNode | None:
    """One parse per query text (the same document object each time, so the analyses cache
    keyed by it hits), None for a text that does not parse."""
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLError:
        return None


def _shape(value: Any) -> Any:
    """What of a variable's value a cost can depend on."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list | tuple):
        return ("list", len(value))
    return None


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation that will run: Strawberry's choice (the first, unless one is named)."""
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return ops[0] if ops else None
    return next((o for o in ops if o.name is not None and o.name.value == name), None)


class QueryCostError(LimitExceededError):
    """An operation whose cost is over the budget, or with more than one ``explain``."""


class QueryLimits(SchemaExtension):
    """Refuses an operation over the cost budget, or with more than one ``explain``, and takes
    one token of the caller's explain bucket for an ``explain``; all before execution.

    A refusal is the operation's result (``data: null`` and one error), so no resolver runs.
    """

    def __init__(self, budget: int, model: CostModel, explain_buckets: KeyBuckets | None) -> None:
        self.budget = budget
        self.model = model
        self.explain_buckets = explain_buckets

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        operation = None if document is None else _operation(document, ec.operation_name)
        if document is not None and operation is not None:
            error = self._check(document, operation)
            if error is not None:
                ec.result = ExecutionResult(data=None, errors=[error])
        yield

    def _check(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> GraphQLError | None:
        ec = self.execution_context
        schema = ec.schema._schema
        variables = ec.variables if isinstance(ec.variables, dict) else {}
        found = self.model.analyse(schema, document, operation, variables)
        if found.cost is None or found.cost > self.budget:
            shown = "beyond counting" if found.cost is None else _shown(found.cost)
            return _error(
                QueryCostError(
                    f"The query's cost is {shown}, over the budget of {self.budget:,} "
                    "(RINGSCOPE_API_MAX_COST). Each list multiplies the cost of the fields "
                    "under it by its page size (its `first` argument), so nested lists grow "
                    "fast: ask for smaller pages or fewer nested lists."
                ),
                operation,
            )
        if found.explains > 1:
            return _error(
                QueryCostError(
                    f"At most one `explain` per request ({found.explains} in this one): send "
                    "one request per account."
                ),
                operation,
            )
        if found.explains and self.explain_buckets is not None:
            principal = getattr(ec.context, "principal", None)
            if principal is not None:
                try:
                    self.explain_buckets.take(principal.key_id, principal.role.value)
                except RateLimitedError as exc:
                    return _error(exc, operation)
        return None


def _shown(cost: int) -> str:
    return f"{cost:,}" if cost < 10**15 else f"about 10^{len(str(cost)) - 1}"


def _error(exc: Exception, node: OperationDefinitionNode) -> GraphQLError:
    return GraphQLError(str(exc), node, original_error=exc)


__all__ = [
    "EXPLAIN_COST",
    "Analysis",
    "CostModel",
    "FieldCost",
    "QueryCostError",
    "QueryLimits",
    "analyse",
    "depth_rule",
    "field_costs",
]
