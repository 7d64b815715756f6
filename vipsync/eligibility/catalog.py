"""The product classifier: exact SKU, then SKU patterns, then ordered title keywords.

The first rule that matches decides. A product no rule places is ``unknown`` and waits for
ops (``vipsync catalog unclassified``); it is never silently in scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "CATEGORIES",
    "CLASSIFIED",
    "Catalog",
    "KeywordRule",
    "SkuPattern",
    "normalize_sku",
    "title_key",
]

CLASSIFIED = ("kvm_switch", "matrix", "hdmi_splitter", "kvm_extender", "accessory", "other")
CATEGORIES = (*CLASSIFIED, "unknown")


def normalize_sku(sku: str) -> str:
    """SKUs compare trimmed and upper-cased."""
    return (sku or "").strip().upper()


def title_key(title: str) -> str:
    """Titles (of order lines without a SKU) compare trimmed, case-folded, spaces collapsed."""
    return " ".join((title or "").split()).casefold()[:512]


@dataclass(frozen=True, slots=True)
class SkuPattern:
    """A regular expression the whole (normalized) SKU must match."""

    regex: re.Pattern[str]
    category: str

    def matches(self, sku: str) -> bool:
        return self.regex.fullmatch(sku) is not None


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """Every phrase of ``all`` appears in the title (case-insensitive, starting at a word
    boundary) and no phrase of ``none`` does."""

    all: tuple[str, ...]
    category: str
    none: tuple[str, ...] = ()
    _all_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _none_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_all_re", tuple(_phrase(p) for p in self.all))
        object.__setattr__(self, "_none_re", tuple(_phrase(p) for p in self.none))

    def matches(self, title: str) -> bool:
        return all(r.search(title) for r in self._all_re) and not any(r.search(title) for r in self._none_re)


def _phrase(text: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in text.split()]
    return re.compile(r"(?<![0-9A-Za-z])" + r"[\s\-_/]+".join(words), re.IGNORECASE)


@dataclass(frozen=True)
class Catalog:
    """A loaded catalog (see docs/eligibility.md for the file format)."""

    version: str
    exact: dict[str, str]
    patterns: tuple[SkuPattern, ...] = ()
    keywords: tuple[KeywordRule, ...] = ()
    # Order lines without a SKU, by their title (see :func:`title_key`): ops decisions.
    titles: dict[str, str] = field(default_factory=dict)

    def with_decisions(self, skus: Mapping[str, str], titles: Mapping[str, str]) -> Catalog:
        """This catalog with ops decisions on top: exact SKUs and SKU-less titles that win
        over every rule of the file."""
        return replace(
            self,
            exact={**self.exact, **{normalize_sku(k): v for k, v in skus.items()}},
            titles={**self.titles, **{title_key(k): v for k, v in titles.items()}},
        )

    def classify(self, sku: str, title: str = "") -> str:
        """The category of a product: the first matching rule wins, else ``unknown``."""
        return self.explain(sku, title)[0]

    def explain(self, sku: str, title: str = "") -> tuple[str, str]:
        """(category, which rule decided: ``sku``, ``pattern:<regex>``, ``keyword:<n>`` or ``none``)."""
        key = normalize_sku(sku)
        if not key:
            by_title = self.titles.get(title_key(title))
            if by_title is not None:
                return by_title, "title"
        hit = self.exact.get(key)
        if hit is not None:
            return hit, "sku"
        for p in self.patterns:
            if p.matches(key):
                return p.category, f"pattern:{p.regex.pattern}"
        for n, rule in enumerate(self.keywords):
            if title and rule.matches(title):
                return rule.category, f"keyword:{n}"
        return "unknown", "none"

    def classify_many(self, products: Iterable[tuple[str, str]]) -> dict[str, str]:
        return {sku: self.classify(sku, title) for sku, title in products}
