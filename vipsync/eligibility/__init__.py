"""The VIP program's rules as pure functions (POLICY.md, made exact).

No I/O, no clock, no SQLAlchemy: every date is an argument. File loading lives in
:mod:`vipsync.eligibility.loader`, which the jobs call; the engine only sees loaded data.
"""

from vipsync.eligibility.calendar import add_days, add_months, add_years, local_date, whole_months_between
from vipsync.eligibility.catalog import CATEGORIES, Catalog, KeywordRule, SkuPattern
from vipsync.eligibility.claims import (
    ClaimDecision,
    check_claim,
    replacement_coverage_end,
    stacks_with_other_discount,
    trade_in_discount,
)
from vipsync.eligibility.engine import (
    BENEFIT_STATUSES,
    REASONS,
    ClaimFacts,
    MemberFacts,
    UnitFacts,
    Verdict,
    evaluate,
)
from vipsync.eligibility.membership import active_registration, check_registration, is_active_member
from vipsync.eligibility.policy import Policy, PolicySet, select_policy
from vipsync.eligibility.proof import factor_matches, parse_order_reference, proof_answer
from vipsync.eligibility.refunds import allocate_refunds
from vipsync.eligibility.status import unit_statuses, window_status

__all__ = [
    "BENEFIT_STATUSES",
    "CATEGORIES",
    "REASONS",
    "Catalog",
    "ClaimDecision",
    "ClaimFacts",
    "KeywordRule",
    "MemberFacts",
    "Policy",
    "PolicySet",
    "SkuPattern",
    "UnitFacts",
    "Verdict",
    "active_registration",
    "add_days",
    "add_months",
    "add_years",
    "allocate_refunds",
    "check_claim",
    "check_registration",
    "evaluate",
    "factor_matches",
    "is_active_member",
    "local_date",
    "parse_order_reference",
    "proof_answer",
    "replacement_coverage_end",
    "select_policy",
    "stacks_with_other_discount",
    "trade_in_discount",
    "unit_statuses",
    "whole_months_between",
    "window_status",
]
