"""Who is an active member, and who may register.

An active member has a registration and no exit recorded after it. An exit counts from the
day it is recorded; a later new registration is a new registration date (the deadline still
applies to it). With dates only, an exit dated on or after the registration date ends that
registration: a re-registration is always recorded with a date after the exit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from vipsync.errors import MembershipRefused

__all__ = ["active_registration", "check_registration", "is_active_member", "registration_from_events"]


def is_active_member(registered_on: date | None, exited_on: date | None) -> bool:
    if registered_on is None:
        return False
    return exited_on is None or exited_on < registered_on


def active_registration(registered_on: date | None, exited_on: date | None) -> date | None:
    """The registration date that counts today, or None when not an active member."""
    return registered_on if is_active_member(registered_on, exited_on) else None


def registration_from_events(events: Iterable[tuple[date, str]]) -> tuple[date | None, date | None]:
    """Fold a history of ``(date, "register" | "exit")`` events into the (registered_on,
    exited_on) pair the store keeps: the latest registration, and the exit recorded after
    it, if any. Events on the same day apply in the order given."""
    registered: date | None = None
    exited: date | None = None
    for day, kind in events:
        if kind == "register":
            if registered is None or exited is not None:
                registered, exited = day, None
        elif kind == "exit":
            if registered is not None and exited is None:
                exited = day
        else:
            raise ValueError(f"unknown membership event {kind!r}")
    return registered, exited


def check_registration(country: str | None, regions: Iterable[str]) -> str:
    """Refuse a registration from outside the program's regions; return the country."""
    code = (country or "").strip().upper()
    if code == "UK":
        code = "GB"
    allowed = set(regions)
    if not code:
        raise MembershipRefused(
            "registration refused: the member's country is required to join the VIP program"
        )
    if code not in allowed:
        raise MembershipRefused(
            f"registration refused: the VIP program is open to the United States, the EU and Japan, not {code}"
        )
    return code
