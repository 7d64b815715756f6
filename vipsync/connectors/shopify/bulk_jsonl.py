"""Join a bulk-operation result (JSON Lines) back into whole orders, in constant memory.

A bulk result writes each node of a nested connection on its own line with ``__parentId``
naming its parent: ``LineItem`` lines point at their ``Order``, ``RefundLineItem`` lines at
their ``Refund`` (which stays nested in the order line, ``refunds`` being a list field).
Shopify only promises that a child comes *after* its parent, not right after it, so the
lines are first spilled to a SQLite file on disk (indexed by parent id) and the orders are
then read back one by one with their children. Memory stays flat whatever the file's size;
disk holds about one copy of the file, in ``work_dir`` (by default the running job's private
workspace, else ``VIPSYNC_DATA_DIR/downloads``: the data disk, never the system's temporary
folder), removed after use, also when the reader stops early.

Each line is parsed once: the parsed node is spilled in :mod:`marshal`'s binary form (our
own file, read back only by this process), not as JSON text to parse again.

Each child is placed by its type, read from ``__typename`` or else from its ``gid://``
id: ``LineItem`` children become the order's ``lineItems``, ``RefundLineItem`` children
their refund's ``refundLineItems`` (files of older queries; a refund-line child without an
id is recognised by its parent being a ``Refund``). A child of any other type (another
query's result, a ``DiscountCodeApplication`` line) is never taken for a line item: it is
skipped and counted per type in the ``skipped`` counter the caller passes in.
"""

from __future__ import annotations

import json
import marshal
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vipsync.connectors.records import Rejected
from vipsync.downloads import current_workspace, downloads_dir

if TYPE_CHECKING:
    import sqlite3

__all__ = ["assemble_bulk_orders", "child_type", "default_work_dir", "gid_type", "is_bulk_line"]

_INSERT_BATCH = 2_000


def gid_type(value: Any) -> str | None:
    """``gid://shopify/LineItem/1`` -> ``LineItem``."""
    if isinstance(value, str) and value.startswith("gid://"):
        parts = value.split("/")
        if len(parts) >= 4:
            return parts[3]
    return None


def is_bulk_line(obj: Any) -> bool:
    """A line of a bulk result: a GraphQL node (``gid://`` id) or a child (``__parentId``)."""
    return isinstance(obj, dict) and ("__parentId" in obj or gid_type(obj.get("id")) is not None)


def child_type(child: dict, parent_id: str | None = None) -> str | None:
    """The GraphQL type of a child line: its ``__typename``, else its gid's type, else
    ``RefundLineItem`` for an id-less child of a ``Refund`` that names its ``lineItem``."""
    name = child.get("__typename")
    if isinstance(name, str) and name:
        return name
    kind = gid_type(child.get("id"))
    if kind is not None:
        return kind
    if gid_type(parent_id) == "Refund" and "lineItem" in child:
        return "RefundLineItem"
    return None


def default_work_dir() -> Path:
    """Where join files go outside a job's workspace: the private downloads folder of the
    data directory (VIPSYNC_DATA_DIR/downloads, ``0700``)."""
    from vipsync.config.settings import get_settings

    return downloads_dir(get_settings().data_dir)


def assemble_bulk_orders(
    lines: Iterable[tuple[int, bytes | str]],
    *,
    skipped: Counter[str] | None = None,
    work_dir: Path | None = None,
) -> Iterator[dict | Rejected]:
    """Yield each ``Order`` line with its children joined in (``lineItems`` as a list,
    each refund's ``refundLineItems`` as a list when the file has them), in file order.
    ``lines`` gives (line number, text). A line that is not JSON becomes a
    :class:`Rejected`; a child whose parent never appears becomes one too. Children of
    other types are skipped and counted in ``skipped`` (by type; ``"unknown"`` when the
    line names none). The join file lives in ``work_dir`` (default
    :func:`default_work_dir`) and is removed when the iteration ends."""
    # The join's modules load only for a bulk file: an import of other files into
    # PostgreSQL does not carry SQLite's module (about 1 MiB).
    import sqlite3
    import tempfile

    skipped = skipped if skipped is not None else Counter()
    # A job's private workspace of the data folder when there is one (downloads.py).
    base = work_dir or current_workspace() or default_work_dir()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vipsync-bulk-", dir=base) as tmp:
        db = sqlite3.connect(Path(tmp) / "join.sqlite3")
        try:
            yield from _join(db, lines, skipped)
        finally:
            db.close()


def _join(
    db: sqlite3.Connection, lines: Iterable[tuple[int, bytes | str]], skipped: Counter[str]
) -> Iterator[dict | Rejected]:
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE parents (seq INTEGER PRIMARY KEY, id TEXT, body BLOB)")
    db.execute("CREATE TABLE children (seq INTEGER PRIMARY KEY, parent TEXT, body BLOB)")
    parents: list[tuple] = []
    children: list[tuple] = []
    dumps = marshal.dumps
    for number, raw in lines:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        text = text.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            yield Rejected(f"line {number}", None, "not valid JSON", {"unparsed_line": text})
            continue
        if not isinstance(obj, dict):
            yield Rejected(
                f"line {number}", None, "a bulk line must be a JSON object", {"unparsed_line": text}
            )
            continue
        parent = obj.pop("__parentId", None)
        if parent:
            children.append((number, str(parent), dumps(obj)))
        else:
            parents.append((number, str(obj.get("id") or f"line {number}"), dumps(obj)))
        if len(parents) + len(children) >= _INSERT_BATCH:
            db.executemany("INSERT INTO parents VALUES (?, ?, ?)", parents)
            db.executemany("INSERT INTO children VALUES (?, ?, ?)", children)
            parents.clear()
            children.clear()
    db.executemany("INSERT INTO parents VALUES (?, ?, ?)", parents)
    db.executemany("INSERT INTO children VALUES (?, ?, ?)", children)
    db.execute("CREATE INDEX ix_children_parent ON children (parent, seq)")
    db.execute("CREATE INDEX ix_parents_id ON parents (id)")
    db.commit()

    lookup = db.cursor()
    loads = marshal.loads

    def kids(parent_id: str, wanted: str) -> list[dict]:
        rows = lookup.execute("SELECT body FROM children WHERE parent = ? ORDER BY seq", (parent_id,))
        out = []
        for (body,) in rows:
            child = loads(body)
            kind = child_type(child, parent_id)
            if kind != wanted:
                skipped[kind or "unknown"] += 1
                continue
            child.pop("__typename", None)
            out.append(child)
        return out

    for _number, node_id, body in db.cursor().execute("SELECT seq, id, body FROM parents ORDER BY seq"):
        node = loads(body)
        line_items = kids(node_id, "LineItem")
        if line_items or "lineItems" not in node:
            node["lineItems"] = line_items
        refunds = node.get("refunds")
        if isinstance(refunds, list):
            for refund in refunds:
                if isinstance(refund, dict) and refund.get("id") and "refundLineItems" not in refund:
                    refund_lines = kids(str(refund["id"]), "RefundLineItem")
                    if refund_lines:  # absent: the query did not select them
                        refund["refundLineItems"] = refund_lines
        yield node

    # Children whose parent is no order line (and no refund of one) are reported.
    orphans = db.cursor().execute(
        "SELECT c.seq, c.parent FROM children c LEFT JOIN parents p ON p.id = c.parent "
        "WHERE p.id IS NULL AND c.parent NOT LIKE 'gid://shopify/Refund/%'"
    )
    for number, parent in orphans:
        yield Rejected(f"line {number}", "__parentId", f"parent {parent} is not in the file", None)
