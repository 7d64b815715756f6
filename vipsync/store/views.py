"""The SQL views ops read (dashboards, the read-only role, the read API).

Each view is defined once here for both databases, with its documented columns; the
README documents every column (a test compares the two). The views are not created by
one migration but by the migration environment after every upgrade, from this module:
it drops them before the migrations run (SQLite cannot batch-alter a table a view reads)
and creates them again from the current code once the schema is at head. A migration that
renames or adds a column a view reads changes the view here in the same commit.

Statuses that depend on today (active, closing soon, expired) are computed from
``CURRENT_DATE`` when read, with the same rule as :func:`vipsync.eligibility.status.
window_status` (closing soon: fewer than 30 days left). No view carries a digest, a raw
payload or a personal field: members are their pseudonymous ids.

A view may need a table another part of the schema brings (``requires``): it is created
only when those tables exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text

__all__ = [
    "VIEWS",
    "WINDOW_COLUMNS",
    "View",
    "create_views",
    "drop_views",
    "grant_readonly",
    "readonly_grantees",
    "suspended_views",
]

CLOSING_SOON_DAYS = 30
# The windows of ops_windows_closing: (window_kind, the unit_tags column of its end).
WINDOW_COLUMNS = (
    ("original_warranty", "original_warranty_end"),
    ("registration", "registration_deadline"),
    ("extended_warranty", "extended_warranty_end"),
)


@dataclass(frozen=True)
class _Dialect:
    """The few expressions that differ between PostgreSQL and SQLite."""

    name: str

    @property
    def today(self) -> str:
        return "CURRENT_DATE"

    def days_between(self, later: str, earlier: str) -> str:
        if self.name == "postgresql":
            return f"({later} - {earlier})"
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"

    def minus_days(self, day: str, n: int) -> str:
        if self.name == "postgresql":
            return f"({day} - {n})"
        return f"date({day}, '-{n} days')"

    def seconds_since(self, ts: str) -> str:
        if self.name == "postgresql":
            return f"CAST(EXTRACT(EPOCH FROM (now() - {ts})) AS BIGINT)"
        return f"CAST((julianday('now') - julianday({ts})) * 86400 AS INTEGER)"

    def json_list_items(self, column: str) -> str:
        """A FROM item: the text items of a JSON list column as ``f(value)``, none when the
        column holds no list."""
        if self.name == "postgresql":
            return (
                "LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof("
                f"{column}) = 'array' THEN {column} ELSE '[]'::jsonb END) AS f(value)"
            )
        return f"json_each(CASE WHEN json_type({column}) = 'array' THEN {column} ELSE '[]' END) AS f"

    def json_list_has(self, column: str, item: str) -> str:
        """True when the JSON list column holds the text ``item``."""
        if self.name == "postgresql":
            return f"COALESCE(jsonb_typeof({column}) = 'array' AND {column} ? '{item}', false)"
        return (
            f"EXISTS (SELECT 1 FROM json_each(CASE WHEN json_type({column}) = 'array' "
            f"THEN {column} ELSE '[]' END) WHERE value = '{item}')"
        )

    def window_status(self, start: str, end: str | None) -> str:
        today = self.today
        if end is None:
            return (
                f"CASE WHEN {start} IS NULL THEN NULL WHEN {today} < {start} THEN 'not_started' "
                "ELSE 'active' END"
            )
        return (
            f"CASE WHEN {start} IS NULL THEN NULL "
            f"WHEN {today} < {start} THEN 'not_started' "
            f"WHEN {end} IS NULL THEN 'active' "
            f"WHEN {today} >= {end} THEN 'expired' "
            f"WHEN {today} >= {self.minus_days(end, CLOSING_SOON_DAYS)} THEN 'closing_soon' "
            "ELSE 'active' END"
        )


@dataclass(frozen=True)
class View:
    """One view: its name, documented columns in order, and its SQL for a dialect."""

    name: str
    columns: tuple[str, ...]
    select: Callable[[_Dialect], str]
    requires: tuple[str, ...] = ()

    def sql(self, dialect: str) -> str:
        return self.select(_Dialect(dialect))


def _units(d: _Dialect) -> str:
    return f"""
SELECT u.id AS unit_id, u.store_key AS store, o.name AS order_name, u.order_external_id AS order_id,
       u.sku, u.ordinal, COALESCE(t.category, 'untagged') AS category,
       COALESCE(t.country, o.country) AS country, COALESCE(t.purchase_date, o.purchase_date) AS purchase_date,
       t.eligible, t.valid_purchase, t.original_warranty_end, t.registration_deadline,
       t.extended_warranty_end, t.trade_in_opens, t.member_id, t.benefit_status, t.policy_version,
       {
        d.window_status(
            "CASE WHEN t.original_warranty_end IS NOT NULL THEN t.purchase_date END",
            "t.original_warranty_end",
        )
    } AS original_warranty_status,
       {
        d.window_status(
            "CASE WHEN t.registration_deadline IS NOT NULL THEN t.purchase_date END",
            "t.registration_deadline",
        )
    } AS registration_status,
       {
        d.window_status(
            "CASE WHEN t.extended_warranty_end IS NOT NULL THEN t.original_warranty_end END",
            "t.extended_warranty_end",
        )
    } AS extended_warranty_status,
       {d.window_status("t.trade_in_opens", None)} AS trade_in_status,
       t.tagged_at
FROM units u
JOIN orders o ON o.id = u.order_id
LEFT JOIN unit_tags t ON t.unit_id = u.id
WHERE u.removed = {_false(d)}"""


def _false(d: _Dialect) -> str:
    return "false" if d.name == "postgresql" else "0"


def _true(d: _Dialect) -> str:
    return "true" if d.name == "postgresql" else "1"


def _windows_closing(d: _Dialect) -> str:
    # The windows come from the (window end, unit id) indexes alone; each window's tag and
    # unit are joined afterwards (left joins the planner drops when a query does not read
    # them, as a count does), so "the first N closing" sorts index entries, not rows.
    # Units an order edit took away carry no window: the tagger nulls them.
    parts = []
    for window, column in WINDOW_COLUMNS:
        parts.append(
            f"""
  SELECT unit_id, CAST('{window}' AS VARCHAR(32)) AS window_kind, {column} AS closes_on
  FROM unit_tags WHERE {column} >= {d.today}"""
        )
    windows = "\n  UNION ALL".join(parts)
    return f"""
SELECT w.unit_id, u.store_key AS store, u.sku, t.country, t.member_id, t.benefit_status,
       w.window_kind, w.closes_on, {d.days_between("w.closes_on", d.today)} AS days_left
FROM ({windows}
) w
LEFT JOIN unit_tags t ON t.unit_id = w.unit_id
LEFT JOIN units u ON u.id = w.unit_id"""


def _registration_deadlines(d: _Dialect) -> str:
    return f"""
SELECT t.unit_id, u.store_key AS store, u.sku, t.country, t.purchase_date, t.registration_deadline,
       {d.days_between("t.registration_deadline", d.today)} AS days_left
FROM unit_tags t LEFT JOIN units u ON u.id = t.unit_id
WHERE t.registration_deadline >= {d.today} AND t.member_id IS NULL"""


def _benefits_used(d: _Dialect) -> str:
    # unit_refunded: a refund (or an order edit) took the claimed unit, which it does only
    # when every unit of its SKU in the order carries a claim (POLICY.md: unclaimed first).
    return f"""
SELECT c.id AS claim_id, c.unit_id, u.store_key AS store, u.sku, t.country, c.kind, c.claimed_on,
       c.policy_version, t.member_id,
       CASE WHEN {d.json_list_has("t.reasons", "refunded")} THEN {_true(d)} ELSE {_false(d)} END
           AS unit_refunded
FROM claims c
JOIN units u ON u.id = c.unit_id
LEFT JOIN unit_tags t ON t.unit_id = c.unit_id"""


def _order_flags(d: _Dialect) -> str:
    # The flags a mapper set (orders.ops_flags), and those the store decides as it is now:
    # a replacement naming an order the store does not hold (gone once that order arrives),
    # and an order a refund took a claimed unit from. A claimed unit an exchange returned
    # is not such a refund: the unit added in its place took the claim over (its tag shows
    # the benefit used without a claim of its own), so an order is flagged only when it
    # has more claimed units taken than units that took a claim over.
    refunded = d.json_list_has("t.reasons", "refunded")
    return f"""
SELECT o.store_key AS store, o.external_id AS order_id, o.name AS order_name, o.source,
       CAST(f.value AS VARCHAR(64)) AS flag, o.replaced_order_id, o.purchase_date
FROM orders o, {d.json_list_items("o.ops_flags")}
WHERE o.ops_flags IS NOT NULL
UNION ALL
SELECT o.store_key AS store, o.external_id AS order_id, o.name AS order_name, o.source,
       CAST('replaced_order_missing' AS VARCHAR(64)) AS flag, o.replaced_order_id, o.purchase_date
FROM orders o
WHERE o.is_replacement = {_true(d)} AND o.replaced_order_id IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM orders r WHERE r.store_key = o.store_key AND r.external_id = o.replaced_order_id)
UNION ALL
SELECT o.store_key AS store, o.external_id AS order_id, o.name AS order_name, o.source,
       CAST('claimed_unit_refunded' AS VARCHAR(64)) AS flag, o.replaced_order_id, o.purchase_date
FROM orders o
JOIN (
    SELECT u.order_id, COUNT(*) AS taken FROM units u
    JOIN claims c ON c.unit_id = u.id
    JOIN unit_tags t ON t.unit_id = u.id
    WHERE {refunded}
    GROUP BY u.order_id) r ON r.order_id = o.id
WHERE r.taken > (
    SELECT COUNT(*) FROM units u
    JOIN unit_tags t ON t.unit_id = u.id
    WHERE u.order_id = o.id AND t.benefit_status IN ('exchange_used', 'trade_in_used')
      AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.unit_id = u.id))"""


def _unclassified(d: _Dialect) -> str:
    # SKU-less lines count as placed once their units are tagged with a category (a title
    # decision); products once the tagger classified them. The per-product counts read
    # the partial index of live units by (sku, order_id) only.
    return f"""
SELECT p.sku, p.title, COALESCE(p.category, 'unclassified') AS category,
       (SELECT COUNT(*) FROM (SELECT DISTINCT u.order_id FROM units u WHERE u.sku = p.sku AND NOT u.removed) o)
           AS orders,
       (SELECT COUNT(u.order_id) FROM units u WHERE u.sku = p.sku AND NOT u.removed) AS units
FROM products p
WHERE p.category IS NULL OR p.category = 'unknown'
UNION ALL
SELECT '' AS sku, u.title, 'no_sku' AS category, COUNT(DISTINCT u.order_id) AS orders, COUNT(u.id) AS units
FROM units u
LEFT JOIN unit_tags t ON t.unit_id = u.id
WHERE u.sku = '' AND u.removed = {_false(d)} AND (t.category IS NULL OR t.category = 'unknown')
GROUP BY u.title"""


def _sync_health(d: _Dialect) -> str:
    return f"""
SELECT h.store_key AS store, h.last_success_at, {d.seconds_since("h.last_success_at")} AS lag_s,
       h.last_attempt_at, h.last_cursor, h.syncs_ok, h.errors_total, h.errors_since_success,
       h.last_error, h.last_error_at, h.rate_limit_wait_s, h.orders_read
FROM store_sync_health h"""


def _errors(d: _Dialect) -> str:
    return """
SELECT 'import' AS kind, e.id, e.source, e.store_key AS store, e.record_id, e.field, e.message,
       e.status, e.created_at
FROM import_errors e
UNION ALL
SELECT 'webhook' AS kind, w.id, 'shopify-webhook' AS source, w.store_key AS store,
       w.webhook_id AS record_id, w.topic AS field, COALESCE(w.error, '') AS message, w.status,
       w.received_at AS created_at
FROM webhook_deliveries w
WHERE w.status = 'failed'"""


def _proof_decisions(d: _Dialect) -> str:
    return """
SELECT p.id, p.decided_at, p.client, p.store_key AS store, o.name AS order_name, p.member_id,
       p.method, p.outcome, p.reason
FROM proof_decisions p
LEFT JOIN orders o ON o.id = p.order_id"""


_STATUS = ("original_warranty_status", "registration_status", "extended_warranty_status", "trade_in_status")

VIEWS: tuple[View, ...] = (
    View(
        "ops_units",
        (
            "unit_id", "store", "order_name", "order_id", "sku", "ordinal", "category", "country",
            "purchase_date", "eligible", "valid_purchase", "original_warranty_end",
            "registration_deadline", "extended_warranty_end", "trade_in_opens", "member_id",
            "benefit_status", "policy_version", *_STATUS, "tagged_at",
        ),
        _units,
    ),
    View(
        "ops_windows_closing",
        ("unit_id", "store", "sku", "country", "member_id", "benefit_status", "window_kind", "closes_on", "days_left"),
        _windows_closing,
    ),
    View(
        "ops_registration_deadlines",
        ("unit_id", "store", "sku", "country", "purchase_date", "registration_deadline", "days_left"),
        _registration_deadlines,
    ),
    View(
        "ops_benefits_used",
        (
            "claim_id", "unit_id", "store", "sku", "country", "kind", "claimed_on", "policy_version",
            "member_id", "unit_refunded",
        ),
        _benefits_used,
    ),
    View(
        "ops_order_flags",
        ("store", "order_id", "order_name", "source", "flag", "replaced_order_id", "purchase_date"),
        _order_flags,
    ),
    View("ops_unclassified", ("sku", "title", "category", "orders", "units"), _unclassified),
    View(
        "ops_sync_health",
        (
            "store", "last_success_at", "lag_s", "last_attempt_at", "last_cursor", "syncs_ok",
            "errors_total", "errors_since_success", "last_error", "last_error_at",
            "rate_limit_wait_s", "orders_read",
        ),
        _sync_health,
    ),
    View(
        "ops_errors",
        ("kind", "id", "source", "store", "record_id", "field", "message", "status", "created_at"),
        _errors,
    ),
    View(
        "ops_proof_decisions",
        ("id", "decided_at", "client", "store", "order_name", "member_id", "method", "outcome", "reason"),
        _proof_decisions,
        requires=("proof_decisions",),
    ),
)  # fmt: skip


def _existing_views(conn: Connection) -> set[str]:
    return set(inspect(conn).get_view_names())


def readonly_grantees(conn: Connection) -> list[str]:
    """PostgreSQL: the roles granted SELECT on the views (kept across a re-creation)."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.execute(
        text(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND privilege_type = 'SELECT' "
            "AND table_name LIKE 'ops\\_%' AND grantee <> current_user"
        )
    ).scalars()
    return sorted(str(r) for r in rows)


def drop_views(conn: Connection) -> None:
    """Drop every view of :data:`VIEWS` that exists."""
    existing = _existing_views(conn)
    for view in reversed(VIEWS):
        if view.name in existing:
            conn.execute(text(f"DROP VIEW {view.name}"))


def create_views(conn: Connection, *, grant_to: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Create (or replace) every view whose tables exist; grant SELECT on them to
    ``grant_to`` (PostgreSQL). Returns the names created."""
    tables = set(inspect(conn).get_table_names())
    drop_views(conn)
    made = []
    for view in VIEWS:
        if not set(view.requires) <= tables:
            continue
        conn.execute(text(f"CREATE VIEW {view.name} AS {view.sql(conn.dialect.name)}"))
        made.append(view.name)
    if conn.dialect.name == "postgresql":
        for role in grant_to:
            for name in made:
                conn.execute(text(f'GRANT SELECT ON {name} TO "{role}"'))
    return made


@contextmanager
def suspended_views(conn: Connection) -> Iterator[list[str]]:
    """Drop the views for the block and create them again after (a SQLite batch
    migration of a table a view reads needs this); the read-only grants are kept."""
    grantees = readonly_grantees(conn)
    drop_views(conn)
    yield grantees
    create_views(conn, grant_to=grantees)


def grant_readonly(conn: Connection, role: str, *, password: str | None = None) -> list[str]:
    """PostgreSQL: create ``role`` (a login role when a password is given) if missing and
    let it SELECT the views and nothing else: no base table, so no digest, raw payload
    or personal field. Returns the views granted."""
    if conn.dialect.name != "postgresql":
        raise ValueError("a read-only role needs PostgreSQL (SQLite has no roles)")
    if not role or not all(c.isalnum() or c in "_-" for c in role) or len(role) > 63:
        raise ValueError(f"role: {role!r} must be 1-63 letters, digits, '_' or '-'")
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    quoted = f'"{role}"'
    if exists is None:
        conn.execute(text(f"CREATE ROLE {quoted} {'LOGIN' if password else 'NOLOGIN'}"))
    if password:
        # A utility statement takes no bind parameters: quote the literal the server's way.
        literal = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar_one()
        conn.execute(text(f"ALTER ROLE {quoted} LOGIN PASSWORD {literal}"))
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {quoted}'))
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"))
    conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {quoted}"))
    conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {quoted}"))
    existing = _existing_views(conn)
    granted = [v.name for v in VIEWS if v.name in existing]
    for name in granted:
        conn.execute(text(f"GRANT SELECT ON {name} TO {quoted}"))
    return granted
