"""Shopify's calculated query cost, as the fake Admin API charges it.

The rules are the ones Shopify documents
(https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, and Shopify
Engineering's "Rate Limiting GraphQL APIs by Calculating Query Complexity"):

- a scalar or an enum costs 0, an object 1;
- a connection costs 2 plus ``first`` (or ``last``) times the cost of one of its nodes;
  its ``pageInfo`` is an object (1);
- a mutation costs 10;
- the requested cost is computed from the query before it runs; the actual cost from
  what came back (a connection that returns fewer nodes than ``first`` costs less), and
  the difference is refunded to the bucket.

Shopify's table does not price plain list fields (``refunds``, ``discountAllocations``,
``accessScopes``): a list with a ``first`` argument counts ``first`` elements, one without
counts one element (see docs/shopify.md, "Not done / limits"). No schema is needed: a field
with a selection is an object; one whose selection holds ``nodes``, ``edges`` or
``pageInfo`` is a connection. The query is parsed with ``graphql-core``.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
)

__all__ = ["MUTATION_COST", "actual_cost", "requested_cost"]

MUTATION_COST = 10
_CONNECTION_PARTS = frozenset({"nodes", "edges", "pageInfo"})


def _operation(query: str) -> OperationDefinitionNode:
    for definition in parse(query).definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition
    raise ValueError("no operation in the query")


def _size(field: FieldNode, variables: dict[str, Any]) -> int | None:
    """The field's ``first`` (or ``last``) argument, a literal or a variable."""
    for arg in field.arguments or ():
        if arg.name.value not in ("first", "last"):
            continue
        value = arg.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            return int(given) if given is not None else None
    return None


def _fields(selection: SelectionSetNode | None) -> list[FieldNode]:
    return [s for s in (selection.selections if selection else ()) if isinstance(s, FieldNode)]


def _is_connection(field: FieldNode) -> bool:
    return any(f.name.value in _CONNECTION_PARTS for f in _fields(field.selection_set))


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _selection_cost(selection: SelectionSetNode | None, variables: dict, data: Any, actual: bool) -> int:
    """The cost of an object's selected fields (an interface or union: its common fields
    plus the most expensive of its fragments)."""
    if selection is None:
        return 0
    total = 0
    fragments = [0]
    for item in selection.selections:
        if isinstance(item, FieldNode):
            value = data.get(_key(item)) if isinstance(data, dict) else None
            total += _field_cost(item, variables, value, actual)
        elif isinstance(item, InlineFragmentNode):
            fragments.append(_selection_cost(item.selection_set, variables, data, actual))
    return total + max(fragments)


def _field_cost(field: FieldNode, variables: dict, data: Any, actual: bool) -> int:
    if field.selection_set is None:
        return 0  # scalar or enum
    if actual and data is None:
        return 0  # nothing came back (a null object)
    size = _size(field, variables)
    if _is_connection(field):
        cost = 2
        for part in _fields(field.selection_set):
            name, value = part.name.value, (data.get(_key(part)) if isinstance(data, dict) else None)
            if name == "pageInfo":
                cost += 1
            elif name == "nodes":
                items = value if actual and isinstance(value, list) else [None] * (size or 1)
                cost += sum(1 + _selection_cost(part.selection_set, variables, i, actual) for i in items)
            elif name == "edges":
                edges = value if actual and isinstance(value, list) else [None] * (size or 1)
                node = next((f for f in _fields(part.selection_set) if f.name.value == "node"), None)
                if node is not None:
                    cost += sum(
                        1
                        + _selection_cost(
                            node.selection_set,
                            variables,
                            e.get("node") if isinstance(e, dict) else None,
                            actual,
                        )
                        for e in edges
                    )
        return cost
    if actual and isinstance(data, list):
        return sum(1 + _selection_cost(field.selection_set, variables, item, actual) for item in data)
    if isinstance(data, list) or size is not None:  # a list field: its elements
        return (size or 1) * (1 + _selection_cost(field.selection_set, variables, None, actual))
    return 1 + _selection_cost(field.selection_set, variables, data, actual)


def requested_cost(query: str, variables: dict[str, Any] | None = None) -> int:
    """The cost Shopify computes from the query before running it."""
    op = _operation(query)
    roots = _fields(op.selection_set)
    if op.operation.value == "mutation":
        return MUTATION_COST * len(roots)
    return sum(_field_cost(f, variables or {}, None, False) for f in roots)


def actual_cost(query: str, variables: dict[str, Any] | None, data: dict[str, Any]) -> int:
    """The cost of what came back: connections and lists count the elements returned."""
    op = _operation(query)
    roots = _fields(op.selection_set)
    if op.operation.value == "mutation":
        return MUTATION_COST * len(roots)
    return sum(_field_cost(f, variables or {}, data.get(_key(f)), True) for f in roots)
