"""Policy versions: every number of the program is a parameter here, never in code.

A unit is judged by the enabled version with the latest ``effective_from`` on or before
its purchase date, unless a later enabled version says ``retroactive = true``; the as-of
date asked for never changes the choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vipsync.eligibility.catalog import CLASSIFIED
from vipsync.errors import PolicyError

__all__ = [
    "AgeBand",
    "Exchange",
    "Policy",
    "PolicySet",
    "Registration",
    "Scope",
    "TradeIn",
    "Warranty",
    "select_policy",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _country_code(value: str) -> str:
    value = value.strip().upper()
    if value == "UK":
        raise ValueError("write the United Kingdom as GB")
    if len(value) != 2 or not value.isalpha():
        raise ValueError(f"not an ISO 3166-1 alpha-2 code: {value!r}")
    return value


class Scope(_Strict):
    """Which units are in the program."""

    regions: frozenset[str] = Field(min_length=1, description="ISO codes of the program's countries.")
    official_only: bool = Field(
        True, description="Only official shops and seller accounts (the FAQ's temporary exclusion)."
    )
    categories: frozenset[str] = Field(frozenset({"kvm_switch"}), min_length=1)

    @field_validator("regions", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> frozenset[str]:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ValueError("must be a list of ISO country codes")
        return frozenset(_country_code(str(v)) for v in value)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(value - set(CLASSIFIED))
        if bad:
            raise ValueError(f"unknown categories {bad} (known: {', '.join(CLASSIFIED)})")
        return value


class Warranty(_Strict):
    original_years: int = Field(ge=1, le=10)
    original_years_by_country: dict[str, int] = Field(default_factory=dict, description="e.g. DE = 2")
    extended_years: int = Field(ge=1, le=20, description="extended_warranty_end = purchase_date + this")

    @field_validator("original_years_by_country")
    @classmethod
    def _by_country(cls, value: dict[str, int]) -> dict[str, int]:
        out = {}
        for k, v in value.items():
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{k}: must be a whole number of years >= 1")
            out[_country_code(k)] = v
        return out

    @model_validator(mode="after")
    def _extended_after_original(self) -> Warranty:
        longest = max([self.original_years, *self.original_years_by_country.values()])
        if self.extended_years <= longest:
            raise ValueError(
                f"extended_years ({self.extended_years}) must exceed every original warranty ({longest})"
            )
        return self

    def original_years_for(self, country: str | None) -> int:
        return self.original_years_by_country.get(country or "", self.original_years)


class Registration(_Strict):
    """How membership works. ``deadline``: ``original_warranty_end`` (VIP: register before
    the original warranty ends) or ``none`` (TESmart ID). ``membership`` says how members
    come to be (``registration``, or ``verified_email`` for an automatic membership that
    becomes active when the e-mail is verified); the engine only reads the active date."""

    deadline: Literal["original_warranty_end", "none"]
    membership: Literal["registration", "verified_email"] = "registration"


class Exchange(_Strict):
    """One exchange per unit during [original_warranty_end, extended_warranty_end); the
    replacement is covered through the ``replacement_days``-th day after the exchange, or
    the unit's remaining coverage when longer."""

    replacement_days: int = Field(ge=0, le=3650)


class AgeBand(_Strict):
    under_months: int = Field(ge=1)
    percent: Decimal = Field(ge=0, le=100)


class TradeIn(_Strict):
    """When the trade-in opens (purchase + months + days), when it closes (optional) and
    how its value is computed."""

    opens_after_months: int = Field(0, ge=0)
    opens_after_days: int = Field(0, ge=0)
    closes_after_months: int | None = Field(None, ge=1)
    terms: Literal["percent_of_original_price", "share_of_amount_paid_by_age"]
    percent: Decimal | None = Field(None, ge=0, le=100)
    bands: tuple[AgeBand, ...] = ()

    @model_validator(mode="after")
    def _terms(self) -> TradeIn:
        if self.opens_after_months == 0 and self.opens_after_days == 0:
            raise ValueError("opens_after_months or opens_after_days must be set")
        if self.terms == "percent_of_original_price":
            if self.percent is None:
                raise ValueError("percent: required when terms = 'percent_of_original_price'")
            if self.bands:
                raise ValueError("bands: only for terms = 'share_of_amount_paid_by_age'")
        else:
            if not self.bands:
                raise ValueError("bands: required when terms = 'share_of_amount_paid_by_age'")
            if self.percent is not None:
                raise ValueError("percent: only for terms = 'percent_of_original_price'")
            limits = [b.under_months for b in self.bands]
            if limits != sorted(set(limits)):
                raise ValueError("bands: under_months must increase strictly")
        if self.closes_after_months is not None:
            opens_days = self.opens_after_months * 31 + self.opens_after_days
            if self.closes_after_months * 28 <= opens_days:
                raise ValueError("closes_after_months must be after the opening")
        return self


class Policy(_Strict):
    """One policy version (one file in ``config/policies/``)."""

    version: str = Field(min_length=1, max_length=64)
    effective_from: date
    enabled: bool
    retroactive: bool = False
    description: str = ""
    # Where this version applies at all (empty: everywhere). A unit of another store or
    # country is judged by the other versions, as if this one were not enabled.
    stores: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    scope: Scope
    warranty: Warranty
    registration: Registration
    exchange: Exchange
    trade_in: TradeIn

    @field_validator("countries", mode="before")
    @classmethod
    def _countries(cls, value: Any) -> frozenset[str]:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ValueError("must be a list of ISO country codes")
        return frozenset(_country_code(str(v)) for v in value)

    def applies_to(self, store_key: str | None, country: str | None) -> bool:
        """Whether this version judges units of this store and country at all."""
        if self.stores and store_key not in self.stores:
            return False
        return not self.countries or country in self.countries


@dataclass(frozen=True)
class PolicySet:
    """Every loaded version, enabled or not."""

    policies: tuple[Policy, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for p in self.policies:
            if p.version in seen:
                raise PolicyError(f"policy version {p.version!r} is defined twice")
            seen.add(p.version)

    @property
    def enabled(self) -> tuple[Policy, ...]:
        return tuple(p for p in self.policies if p.enabled)

    def get(self, version: str) -> Policy:
        for p in self.policies:
            if p.version == version:
                return p
        raise PolicyError(f"unknown policy version {version!r}")

    def select(
        self, purchase_date: date, *, store_key: str | None = None, country: str | None = None
    ) -> Policy:
        return select_policy(self.policies, purchase_date, store_key=store_key, country=country)

    def selection_steps(
        self, *, store_key: str | None = None, country: str | None = None
    ) -> tuple[tuple[date | None, str | None], ...]:
        """The version :meth:`select` picks for a unit of ``store_key`` and ``country``, as
        steps in date order: ``(first day, version)``, the first step from the beginning
        (day None), a version None where none applies. For a given store and country the
        selection reads only the date and changes only on an ``effective_from``, so the
        steps say it for every date."""
        starts = sorted({p.effective_from for p in self.enabled})
        if not starts:
            return ((None, None),)
        steps: list[tuple[date | None, str | None]] = []
        first = starts[0]
        before = self._version_on(first - timedelta(days=1), store_key, country) if first > date.min else None
        steps.append((None, before))
        for day in starts:
            version = self._version_on(day, store_key, country)
            if version != steps[-1][1]:
                steps.append((day, version))
        return tuple(steps)

    def selection_classes(
        self,
    ) -> tuple[tuple[str | None, str | None, tuple[tuple[date | None, str | None], ...]], ...]:
        """:meth:`selection_steps` for every (store, country) the versions' limits tell
        apart: ``(store, country, steps)``, a store or country None standing for any other
        one. The most specific classes come first; the last is (None, None)."""
        stores = sorted({s for p in self.policies for s in p.stores})
        countries = sorted({c for p in self.policies for c in p.countries})
        classes: list[tuple[str | None, str | None]] = [(s, c) for s in stores for c in countries]
        classes += [(s, None) for s in stores]
        classes += [(None, c) for c in countries]
        classes.append((None, None))
        return tuple((s, c, self.selection_steps(store_key=s, country=c)) for s, c in classes)

    def _version_on(self, day: date, store_key: str | None = None, country: str | None = None) -> str | None:
        try:
            return self.select(day, store_key=store_key, country=country).version
        except PolicyError:
            return None


def select_policy(
    policies: Iterable[Policy],
    purchase_date: date,
    *,
    store_key: str | None = None,
    country: str | None = None,
) -> Policy:
    """The version that judges a unit bought on ``purchase_date`` in ``store_key`` for
    ``country``.

    Among enabled versions that apply to the store and country: the latest ``effective_from`` on or before the purchase, unless
    a later one (or, before every version, any one) is retroactive: then the latest such
    retroactive version. Raises PolicyError when none applies.
    """
    enabled = sorted(
        (p for p in policies if p.enabled and p.applies_to(store_key, country)),
        key=lambda p: p.effective_from,
    )
    base = None
    for p in enabled:
        if p.effective_from <= purchase_date:
            base = p
    later_retro = [p for p in enabled if p.retroactive and p.effective_from > purchase_date]
    if later_retro:
        return later_retro[-1]
    if base is None:
        raise PolicyError(f"no enabled policy version covers purchases of {purchase_date.isoformat()}")
    return base
