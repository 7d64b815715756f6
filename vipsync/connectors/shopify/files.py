"""Shopify order files: stream orders out of whatever shape ops downloaded.

Accepted, detected from the content (not the file name):

* one order object (REST/webhook shape), ``{"order": {...}}`` or ``{"orders": [...]}``,
  pretty-printed or not, of any size: parsed incrementally with ``ijson``;
* JSON Lines of REST orders (each line an order, ``{"order": ...}`` or ``{"orders": [...]}``);
* a bulk-operation result: GraphQL-shaped JSON Lines with ``__parentId`` child lines
  (joined to their order on disk, see :mod:`.bulk_jsonl`).

Memory stays flat in the file's size. A record that cannot be mapped becomes a
:class:`Rejected` (id, field, message, the record) and the file goes on; only a file that
cannot be read at all raises ``ValueError``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import ijson

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.json_text import loads
from vipsync.connectors.limits import json_clean, map_or_reject
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.connectors.shopify.bulk_jsonl import assemble_bulk_orders, gid_type, is_bulk_line
from vipsync.connectors.shopify.mapping import legacy_id, map_graphql_order, map_rest_order

__all__ = ["is_graphql_order", "map_any_order", "read_orders_file", "replay_record"]

_PEEK_BYTES = 1 << 20  # the first line decides JSON Lines vs one document, up to 1 MiB
_CHUNK = 1 << 16


class _Prefixed:
    """A binary reader that first returns ``prefix``, then the rest of ``raw``."""

    def __init__(self, prefix: bytes, raw: IO[bytes]) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._raw.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._raw.read(size)


def _lines(reader: _Prefixed) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of a binary stream, read in chunks."""
    number = 0
    pending = b""
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if pending:
        yield number + 1, pending


_GRAPHQL_KEYS = frozenset({"legacyResourceId", "processedAt", "updatedAt", "lineItems"})


def is_graphql_order(obj: Any) -> bool:
    """True for the GraphQL Admin API shape (``gid://`` id or camelCase order fields)."""
    if not isinstance(obj, dict):
        return False
    if gid_type(obj.get("id")) is not None:
        return True
    return not _GRAPHQL_KEYS.isdisjoint(obj)


def _record_id(obj: Any, fallback: str) -> str:
    if isinstance(obj, dict):
        return legacy_id(obj.get("legacyResourceId")) or legacy_id(obj.get("id")) or fallback
    return fallback


def map_any_order(
    obj: Any, shop: ShopifyShop, *, fallback_id: str = "?", clean: bool = False
) -> OrderRecord | Rejected:
    """Map one order of either shape, within the limits; a bad record becomes a Rejected.
    ``clean``: the order needs no scrubbing of NUL characters (``limits.json_clean``)."""
    mapper = map_graphql_order if is_graphql_order(obj) else map_rest_order
    return map_or_reject(mapper, obj, shop, record_id=_record_id(obj, fallback_id), clean=clean)


def _unwrap(
    obj: Any, shop: ShopifyShop, where: str, *, clean: bool = False
) -> Iterator[OrderRecord | Rejected]:
    """A JSON value holding orders: an order, ``{"order": ...}``, ``{"orders": [...]}``."""
    if isinstance(obj, dict) and isinstance(obj.get("orders"), list):
        for i, item in enumerate(obj["orders"]):
            yield map_any_order(item, shop, fallback_id=f"{where} orders[{i}]", clean=clean)
    elif isinstance(obj, dict) and isinstance(obj.get("order"), dict):
        yield map_any_order(obj["order"], shop, fallback_id=where, clean=clean)
    elif isinstance(obj, dict):
        yield map_any_order(obj, shop, fallback_id=where, clean=clean)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _unwrap(item, shop, f"{where} [{i}]", clean=clean)
    else:
        yield Rejected(where, None, "an order must be a JSON object", {"unparsed_line": json.dumps(obj)})


def _build(events, first_event: str, first_value: Any) -> Any:
    """Build one JSON value from ijson events, starting with an already-read event."""
    builder = ijson.ObjectBuilder()
    builder.event(first_event, first_value)
    depth = 1 if first_event in ("start_map", "start_array") else 0
    while depth:
        _, event, value = next(events)
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
    return builder.value


def _iter_document(reader: _Prefixed, shop: ShopifyShop) -> Iterator[OrderRecord | Rejected]:
    """One JSON document, parsed incrementally: ``orders`` items are mapped one by one."""
    events = ijson.parse(reader, use_float=True)
    top: dict[str, Any] = {}
    saw_orders = False
    index = 0
    for prefix, event, value in events:
        if prefix == "" and event == "start_array":  # a bare list of orders
            for _, ev, val in events:
                if ev == "end_array":
                    break
                item = _build(events, ev, val)
                yield from _unwrap(item, shop, f"item {index}")
                index += 1
            return
        if prefix == "" and event == "map_key":
            key = value
            _, ev, val = next(events)
            if key == "orders" and ev == "start_array":
                saw_orders = True
                for _, ev2, val2 in events:
                    if ev2 == "end_array":
                        break
                    item = _build(events, ev2, val2)
                    yield map_any_order(item, shop, fallback_id=f"orders[{index}]")
                    index += 1
            else:
                top[key] = _build(events, ev, val)
        elif prefix == "" and event not in ("start_map", "end_map"):
            raise ValueError("the file is neither a JSON object nor a list of orders")
    if saw_orders:
        return
    if not top:
        return
    yield from _unwrap(top, shop, "document")


def read_orders_file(
    fh: IO[bytes], shop: ShopifyShop, *, skipped: Counter[str] | None = None
) -> Iterator[OrderRecord | Rejected]:
    """Stream the orders of a Shopify file (any accepted shape) as records or rejects.
    ``skipped`` counts the bulk-result child lines of types that are not order lines."""
    head = b""
    while b"\n" not in head and len(head) < _PEEK_BYTES:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        head += chunk
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    stripped = head.lstrip()
    if not stripped:
        return
    if stripped[:1] not in (b"{", b"["):
        raise ValueError("not JSON: a Shopify orders file starts with '{' or '['")
    reader = _Prefixed(head, fh)
    first_line = stripped.split(b"\n", 1)[0].strip()
    first: Any = None
    if b"\n" in stripped or len(head) < _PEEK_BYTES:
        try:
            first = json.loads(first_line)
        except ValueError:
            first = None
    try:
        if isinstance(first, dict) and is_bulk_line(first):
            yield from _read_bulk(reader, shop, skipped)
        elif isinstance(first, (dict, list)):
            yield from _read_json_lines(reader, shop)
        else:
            yield from _iter_document(reader, shop)
    except ijson.JSONError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _read_json_lines(reader: _Prefixed, shop: ShopifyShop) -> Iterator[OrderRecord | Rejected]:
    for number, line in _lines(reader):
        text = line.strip()
        if not text:
            continue
        try:
            obj = loads(text)
        except (ValueError, RecursionError):
            yield Rejected(
                f"line {number}", None, "not valid JSON", {"unparsed_line": text.decode("utf-8", "replace")}
            )
            continue
        yield from _unwrap(obj, shop, f"line {number}", clean=json_clean(text))


def _read_bulk(
    reader: _Prefixed, shop: ShopifyShop, skipped: Counter[str] | None
) -> Iterator[OrderRecord | Rejected]:
    for item in assemble_bulk_orders(_lines(reader), skipped=skipped):
        if isinstance(item, Rejected):
            yield item
        elif gid_type(item.get("id")) not in (None, "Order"):
            yield Rejected(
                _record_id(item, "?"), "id", f"not an order line ({gid_type(item.get('id'))})", item
            )
        else:
            yield map_any_order(item, shop)


def replay_record(raw: Any, shop: ShopifyShop) -> Iterator[OrderRecord | Rejected]:
    """Map a stored rejected record again (after ops fixed it or the mapper)."""
    if isinstance(raw, dict) and set(raw) == {"unparsed_line"}:
        try:
            raw = json.loads(raw["unparsed_line"])
        except ValueError:
            yield Rejected("replay", None, "still not valid JSON", {"unparsed_line": raw["unparsed_line"]})
            return
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            yield Rejected("replay", None, "not valid JSON", {"unparsed_line": raw})
            return
    yield from _unwrap(raw, shop, "replay")
