"""Member jobs: register, exit, show (erasure is :mod:`vipsync.store.erasure`).

A member is matched by the keyed digest of the one e-mail normalization, never by the
address. A registration names the member's country, which decides only whether the person
may join (POLICY.md, Membership). Each change re-tags the member's units in the same
transaction, so the answer already shows the new tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from vipsync.connectors.records import AMAZON_RELAY_DOMAIN, normalize_email
from vipsync.eligibility.membership import check_registration, is_active_member
from vipsync.errors import RecordError
from vipsync.store.customers import member_by_digest, member_unit_ids, unit_answers
from vipsync.store.models import Member
from vipsync.workers.tagging import cached_rules, tag_units_now

__all__ = [
    "MemberNotFound",
    "email_digest_of",
    "erase_member",
    "exit_member",
    "program_regions",
    "register_member",
    "show_member",
]

# The zone furthest ahead of UTC: a date is "in the future" only once no store has reached it.
_EARLIEST_ZONE_AHEAD = timezone(timedelta(hours=14))
MAX_REASON_CHARS = 500


class MemberNotFound(RecordError):
    """No member has this e-mail (or the member was erased)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def email_digest_of(ctx, email: str, *, field: str = "email") -> str:
    """The keyed digest of a valid e-mail; RecordError naming ``field`` otherwise. Amazon's
    relay addresses never create or match members."""
    if not isinstance(email, str) or len(email) > 320:
        raise RecordError("an e-mail address of at most 320 characters", field=field)
    normalized = normalize_email(email)
    if normalized is None:
        raise RecordError("an e-mail address is required", field=field)
    local, at, domain = normalized.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in normalized):
        raise RecordError("not an e-mail address", field=field)
    if AMAZON_RELAY_DOMAIN in domain:
        raise RecordError("an Amazon relay address cannot be a member's e-mail", field=field)
    digest = ctx.digester.email(normalized)
    assert digest is not None
    return digest


def program_regions(rules) -> frozenset[str]:
    """Where people may join: the regions of every enabled policy version."""
    regions: set[str] = set()
    for policy in rules.policies.enabled:
        regions |= set(policy.scope.regions)
    return frozenset(regions)


@dataclass(frozen=True)
class MembershipResult:
    member_id: int
    outcome: str  # registered | re_registered | already_active | exited | already_exited
    registered_on: date | None
    exited_on: date | None
    units: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "member": self.member_id,
            "outcome": self.outcome,
            "registered_on": self.registered_on.isoformat() if self.registered_on else None,
            "exited_on": self.exited_on.isoformat() if self.exited_on else None,
            "active": is_active_member(self.registered_on, self.exited_on),
            "units": self.units,
        }


def _when(
    on: date | datetime | None, *, now: datetime, reason: str | None, field: str
) -> tuple[date, datetime | None]:
    """A date as given, or a timestamp (kept, dated per unit zone by the tagger); the server
    clock when absent. Never in the future; earlier than today only with a reason."""
    if on is None:
        return now.date(), now
    if isinstance(on, datetime):
        if on.tzinfo is None or on.utcoffset() is None:
            raise RecordError("a timestamp needs its UTC offset", field=field)
        if on > now:
            raise RecordError("a future timestamp is refused", field=field)
        day, ts = on.astimezone(UTC).date(), on.astimezone(UTC)
    else:
        day, ts = on, None
        if day > now.astimezone(_EARLIEST_ZONE_AHEAD).date():
            raise RecordError("a future date is refused", field=field)
    if day < now.date() - timedelta(days=1) and not (reason or "").strip():
        raise RecordError("an earlier date needs a reason", field="reason")
    return day, ts


def _check_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise RecordError(f"a reason of at most {MAX_REASON_CHARS} characters", field="reason")
    return reason.strip() or None


def _retag(ctx, session, member: Member) -> list[dict[str, Any]]:
    unit_ids = member_unit_ids(session, member)
    tag_units_now(session, cached_rules(ctx, session=session), unit_ids)
    return unit_answers(session, unit_ids)


def register_member(
    ctx,
    *,
    email: str,
    country: str,
    on: date | datetime | None = None,
    reason: str | None = None,
    source: str = "support",
    now: datetime | None = None,
) -> MembershipResult:
    """Register a member (a website registration passes ``on=None``: the server's clock).
    Registering again while active changes nothing; after an exit it is a new registration."""
    now = now or _utcnow()
    reason = _check_reason(reason)
    digest = email_digest_of(ctx, email)
    rules = cached_rules(ctx)
    code = check_registration(country if isinstance(country, str) else None, program_regions(rules))
    day, ts = _when(on, now=now, reason=reason, field="registered_on")
    with ctx.session_factory() as session:
        member = member_by_digest(session, digest)
        if member is None:
            member = Member(
                email_hash=digest,
                email_key_id=ctx.digester.key_id,
                country=code,
                registered_at=day,
                registered_ts=ts,
                source=source,
                registration_reason=reason,
                created_at=now,
                updated_at=now,
            )
            session.add(member)
            session.flush()
            outcome = "registered"
        elif is_active_member(member.registered_at, member.exited_at):
            outcome = "already_active"
        else:
            member.registered_at, member.registered_ts = day, ts
            member.exited_at = member.exited_ts = None
            member.country, member.source, member.registration_reason = code, source, reason
            member.updated_at = now
            outcome = "re_registered"
        units = _retag(ctx, session, member)
        result = MembershipResult(member.id, outcome, member.registered_at, member.exited_at, units)
        session.commit()
    return result


def exit_member(
    ctx,
    *,
    email: str,
    on: date | datetime | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> MembershipResult:
    """Record a member's exit: their program windows end (claims and covers stay)."""
    now = now or _utcnow()
    reason = _check_reason(reason)
    digest = email_digest_of(ctx, email)
    day, ts = _when(on, now=now, reason=reason, field="exited_on")
    with ctx.session_factory() as session:
        member = member_by_digest(session, digest)
        if member is None:
            raise MemberNotFound("no member has this e-mail", field="email")
        if not is_active_member(member.registered_at, member.exited_at):
            outcome = "already_exited"
        else:
            if day < member.registered_at:
                raise RecordError("an exit before the registration date", field="exited_on")
            member.exited_at, member.exited_ts, member.updated_at = day, ts, now
            outcome = "exited"
        units = _retag(ctx, session, member)
        result = MembershipResult(member.id, outcome, member.registered_at, member.exited_at, units)
        session.commit()
    return result


def show_member(ctx, *, email: str) -> dict[str, Any]:
    """The member's pseudonymous id, membership dates and units (no personal data)."""
    digest = email_digest_of(ctx, email)
    with ctx.session_factory() as session:
        member = member_by_digest(session, digest)
        if member is None:
            raise MemberNotFound("no member has this e-mail", field="email")
        units = _retag(ctx, session, member)  # the live view: tags as of now
        session.commit()
        return {
            "member": member.id,
            "country": member.country,
            "registered_on": member.registered_at.isoformat(),
            "exited_on": member.exited_at.isoformat() if member.exited_at else None,
            "active": is_active_member(member.registered_at, member.exited_at),
            "source": member.source,
            "units": units,
        }


def erase_member(ctx, *, email: str, origin: str = "support") -> dict[str, Any]:
    """Erase a person (:func:`vipsync.workers.privacy_jobs.erase_email`, the one erasure):
    personal data goes from every table; the member stays pseudonymous, exited now, with
    its warranty records and claims. The member's units are re-tagged before returning."""
    from vipsync.store.models import Member
    from vipsync.workers.privacy_jobs import erase_email

    email_digest_of(ctx, email)  # a clear 422 for what is not an address
    request_id, report = erase_email(ctx, email, origin=origin)
    with ctx.session_factory() as session:
        rules = cached_rules(ctx, session=session)
        unit_ids: list[int] = []
        for member_id in report.member_ids:
            member = session.get(Member, member_id)
            if member is not None:
                unit_ids += member_unit_ids(session, member)
        tag_units_now(session, rules, unit_ids)
        units = unit_answers(session, unit_ids)
        session.commit()
    return {"request": request_id, "erased": report.as_dict(), "units": units}
