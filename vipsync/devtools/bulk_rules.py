"""The restrictions Shopify puts on a bulk operation's query, as the fake Shopify enforces them.

From Shopify's documentation of ``bulkOperationRunQuery`` and the bulk-operations guide
(operation restrictions):

- the query must include at least one connection field;
- at most five connections in the whole query;
- connections nested at most two levels deep (``orders { lineItems }`` is two levels,
  ``orders { lineItems { discountAllocations... } }`` with a third connection is refused);
- the top-level ``node`` and ``nodes`` fields cannot be used;
- a connection cannot be selected inside a list field (``refunds`` is a list of ``Refund``,
  so ``refunds { refundLineItems }`` is refused): bulk results write each connection's
  nodes on their own JSONL lines under a parent id, which a list element does not have.

A connection is recognised by its selection (``edges`` or ``nodes``) or by its name in
:data:`CONNECTIONS`; list fields by :data:`LIST_FIELDS` (the Admin API schema's list-typed
object fields the order queries can reach). The query is parsed with ``graphql-core``.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import FieldNode, GraphQLSyntaxError, OperationDefinitionNode, SelectionSetNode, parse

__all__ = [
    "CONNECTIONS",
    "LIST_FIELDS",
    "MAX_CONNECTIONS",
    "MAX_DEPTH",
    "BulkQueryRefused",
    "check_bulk_query",
]

MAX_CONNECTIONS = 5
MAX_DEPTH = 2

# Connection fields of the Admin API (Order and what hangs from it) the fake knows by name.
CONNECTIONS = frozenset(
    {
        "orders",
        "lineItems",
        "refundLineItems",
        "fulfillmentOrders",
        "transactions",
        "returns",
        "returnLineItems",
        "shippingLines",
        "discountApplications",
        "events",
        "metafields",
        "products",
        "variants",
        "customers",
        "agreements",
        "sales",
    }
)

# List-typed object fields (a GraphQL list, not a connection): no connection may be nested
# inside one of these in a bulk query.
LIST_FIELDS = frozenset(
    {
        "refunds",
        "discountAllocations",
        "taxLines",
        "fulfillments",
        "duties",
        "customAttributes",
        "shippingDiscountAllocations",
        "disputes",
    }
)


class BulkQueryRefused(ValueError):
    """The query breaks one of Shopify's bulk-operation restrictions (the message says which)."""


@dataclass
class _Walk:
    connections: list[str]
    problems: list[str]


def _is_connection(field: FieldNode) -> bool:
    if field.name.value in CONNECTIONS:
        return True
    selections = field.selection_set.selections if field.selection_set else ()
    return any(isinstance(s, FieldNode) and s.name.value in ("edges", "nodes") for s in selections)


def _visit(
    selection_set: SelectionSetNode | None, *, path: str, depth: int, in_list: str | None, walk: _Walk
) -> None:
    if selection_set is None:
        return
    for sel in selection_set.selections:
        if not isinstance(sel, FieldNode):
            _visit(getattr(sel, "selection_set", None), path=path, depth=depth, in_list=in_list, walk=walk)
            continue
        name = sel.name.value
        here = f"{path}.{name}" if path else name
        if name in ("edges", "node") or sel.selection_set is None:
            _visit(sel.selection_set, path=path, depth=depth, in_list=in_list, walk=walk)
            continue
        if _is_connection(sel):
            walk.connections.append(here)
            if in_list is not None:
                walk.problems.append(
                    f"connection {here} is inside the list field {in_list}: bulk queries cannot nest "
                    "a connection in a list field"
                )
            if depth + 1 > MAX_DEPTH:
                walk.problems.append(
                    f"connection {here} is nested {depth + 1} levels deep (at most {MAX_DEPTH})"
                )
            _visit(sel.selection_set, path=here, depth=depth + 1, in_list=in_list, walk=walk)
        elif name in LIST_FIELDS:
            _visit(sel.selection_set, path=here, depth=depth, in_list=in_list or here, walk=walk)
        else:
            _visit(sel.selection_set, path=here, depth=depth, in_list=in_list, walk=walk)


def check_bulk_query(query: str) -> list[str]:
    """The connections of a valid bulk query (dotted paths); raises BulkQueryRefused
    naming every restriction the query breaks."""
    try:
        doc = parse(query)
    except GraphQLSyntaxError as exc:
        raise BulkQueryRefused(f"the bulk query is not valid GraphQL: {exc.message}") from None
    walk = _Walk(connections=[], problems=[])
    for definition in doc.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for top in definition.selection_set.selections:
            if isinstance(top, FieldNode) and top.name.value in ("node", "nodes"):
                walk.problems.append(f"the top-level {top.name.value} field cannot be used in a bulk query")
        _visit(definition.selection_set, path="", depth=0, in_list=None, walk=walk)
    if not walk.connections:
        walk.problems.append("a bulk query must select at least one connection")
    if len(walk.connections) > MAX_CONNECTIONS:
        walk.problems.append(
            f"{len(walk.connections)} connections ({', '.join(walk.connections)}); at most {MAX_CONNECTIONS}"
        )
    if walk.problems:
        raise BulkQueryRefused("; ".join(walk.problems))
    return walk.connections
