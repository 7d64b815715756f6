"""What a sync job reports back (to the CLI, the workers' metrics and the logs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vipsync.store.writer import PageOutcome

__all__ = ["SyncResult"]


@dataclass
class SyncResult:
    """The outcome of one sync or backfill of one store."""

    store_key: str
    mode: str  # "incremental" | "backfill"
    pages: int = 0
    api_calls: int = 0
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rate_limit_wait_s: float = 0.0
    cursor: str | None = None  # the bookmark after the run
    facts_inserted: int = 0  # facts after the sale (refunds, returns) new to the store
    facts_known: int = 0  # facts read again (an overlapping window): nothing changed
    changed_order_ids: list[int] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)  # plain warnings for ops (e.g. the 60-day limit)

    def add_page(self, outcome: PageOutcome) -> None:
        """Count one page the writer stored (:func:`vipsync.store.writer.write_page`)."""
        self.read += outcome.read
        self.inserted += outcome.inserted
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.rejected += outcome.rejected
        self.changed_order_ids.extend(outcome.changed_order_ids)

    def as_dict(self) -> dict[str, object]:
        return {
            "store": self.store_key,
            "mode": self.mode,
            "pages": self.pages,
            "api_calls": self.api_calls,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rate_limit_wait_s": round(self.rate_limit_wait_s, 1),
            "cursor": self.cursor,
        }
