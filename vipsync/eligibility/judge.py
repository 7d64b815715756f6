"""Judging many units at once: units that share the same facts are judged once.

A :class:`Judge` wraps :func:`~vipsync.eligibility.engine.evaluate` with caches that are
pure (same facts and policies in, same verdict out):

- the policy version of each purchase date (and store and country, when a version is
  limited to some), unless the unit is pinned to a version (a claimed unit stays under
  its claim's version, POLICY.md "Policy versions");
- the verdict of each distinct set of facts without the member;
- for an eligible unit with a member, the verdict of those facts and the member's
  :func:`~vipsync.eligibility.engine.member_reading` (active, registered in time): the
  member's id is the only other thing the verdict takes from the member, and it is copied
  in as it is. Units of thousands of members thus share a few evaluations.

:meth:`Judge.judge` returns the shared verdict, the unit's member id and the unit's digest;
:meth:`Judge.verdict` builds the unit's own :class:`Verdict`. Both equal
``evaluate(facts, policy)`` and its ``digest()`` exactly (``tests/unit/test_eligibility_judge.py``
checks it on generated facts). The caches are bounded (``max_entries``), so a long run
stays flat.
"""

from __future__ import annotations

import hashlib
from datetime import date

from vipsync.eligibility.engine import MemberFacts, UnitFacts, Verdict, evaluate, member_reading
from vipsync.eligibility.policy import Policy, PolicySet
from vipsync.errors import PolicyError

__all__ = ["Judge", "with_member"]

_Key = tuple[object, ...]
# A shared verdict, its digest, and its digest text before and after the member id.
_Entry = tuple[Verdict, str, str, str]


class Judge:
    """Verdicts and digests of units under one policy set, each distinct set of facts
    evaluated once."""

    def __init__(self, policies: PolicySet, *, max_entries: int = 200_000) -> None:
        self._policies = policies
        self._max_entries = max_entries
        self._by_date: dict[tuple[date, str | None, str | None], Policy | PolicyError] = {}
        self._verdicts: dict[_Key, _Entry] = {}
        self.evaluations = 0
        # A version limited to stores or countries makes the selection read them too.
        self._scoped = any(p.stores or p.countries for p in policies.policies)

    def policy(
        self, purchase_date: date, *, store_key: str | None = None, country: str | None = None
    ) -> Policy:
        """The version judging a purchase of that date (in that store, for that country,
        when a version is limited to some); PolicyError when none does."""
        key = (purchase_date, store_key, country) if self._scoped else (purchase_date, None, None)
        found = self._by_date.get(key)
        if found is None:
            try:
                found = self._policies.select(purchase_date, store_key=key[1], country=key[2])
            except PolicyError as exc:
                found = exc
            self._by_date[key] = found
        if isinstance(found, PolicyError):
            raise found
        return found

    def judge(
        self, facts: UnitFacts, *, store_key: str | None = None, version: str | None = None
    ) -> tuple[Verdict, int | None, str]:
        """``(shared verdict, member id, digest)`` of one unit of ``store_key``: its verdict
        is the shared one with ``member_id`` set to the member id (:func:`with_member`).
        ``version`` pins the unit to that version (loaded, enabled or not) whatever its
        purchase date selects. Raises PolicyError when no version covers the purchase date
        or the pinned version is not loaded."""
        key: _Key = (
            version,
            store_key if self._scoped else None,
            facts.purchase_date,
            facts.country,
            facts.category,
            facts.official,
            facts.cancelled,
            facts.test,
            facts.payment_pending,
            facts.refunded,
            facts.removed,
            facts.claim,
            facts.replacement,
        )
        entry = self._verdicts.get(key)
        if entry is None:
            entry = self._evaluate(key, facts, None, store_key, version)
        member = facts.member
        if member is None:
            return entry[0], None, entry[1]
        shared = entry[0]
        if shared.eligible:
            reading = (key, member_reading(member, shared.registration_deadline))
            found = self._verdicts.get(reading)
            entry = found if found is not None else self._evaluate(reading, facts, member, store_key, version)
        member_id = member.member_id
        return entry[0], member_id, hashlib.sha256(f"{entry[2]}{member_id}{entry[3]}".encode()).hexdigest()

    def verdict(
        self, facts: UnitFacts, *, store_key: str | None = None, version: str | None = None
    ) -> tuple[Verdict, str]:
        """The unit's own verdict and its digest."""
        shared, member_id, digest = self.judge(facts, store_key=store_key, version=version)
        return with_member(shared, member_id), digest

    def _evaluate(
        self,
        key: _Key,
        facts: UnitFacts,
        member: MemberFacts | None,
        store_key: str | None,
        version: str | None,
    ) -> _Entry:
        policy = (
            self._policies.get(version)
            if version is not None
            else self.policy(facts.purchase_date, store_key=store_key, country=facts.country)
        )
        self.evaluations += 1
        shared = evaluate(_with_member_facts(facts, member), policy)
        text = shared.digest_text()
        # The member id is the second-to-last part of the digest text, the status the last.
        rest, _, status = text.rpartition("|")
        head = rest.rpartition("|")[0]
        entry = (shared, hashlib.sha256(text.encode()).hexdigest(), f"{head}|", f"|{status}")
        if len(self._verdicts) >= self._max_entries:
            self._verdicts.clear()
        self._verdicts[key] = entry
        return entry


def with_member(shared: Verdict, member_id: int | None) -> Verdict:
    """A shared verdict with a unit's member id."""
    if shared.member_id == member_id:
        return shared
    return Verdict(
        shared.policy_version,
        shared.category,
        shared.country,
        shared.purchase_date,
        shared.eligible,
        shared.reasons,
        shared.valid_purchase,
        shared.original_warranty_end,
        shared.registration_deadline,
        shared.extended_warranty_end,
        shared.trade_in_opens,
        shared.trade_in_closes,
        member_id,
        shared.benefit_status,
    )


def _with_member_facts(facts: UnitFacts, member: MemberFacts | None) -> UnitFacts:
    """The facts with the member replaced (its id left out: id 0), or without a member."""
    return UnitFacts(
        facts.purchase_date,
        facts.country,
        facts.category,
        facts.official,
        facts.cancelled,
        facts.test,
        facts.payment_pending,
        facts.refunded,
        facts.removed,
        None if member is None else MemberFacts(0, member.registered_on, member.exited_on),
        facts.claim,
        facts.replacement,
    )
