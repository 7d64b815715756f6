"""Small SQL helpers shared by the repository and the jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import any_, literal
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["in_values"]


def in_values(column: Any, values: Sequence[Any], *, pg: bool) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, where a long IN
    list costs more to render and parse than the query costs to run."""
    if pg:
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(values)
