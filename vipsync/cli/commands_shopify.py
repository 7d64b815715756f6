"""Commands of the shopify part (registered by vipsync.cli.main)."""

from __future__ import annotations

__all__ = ["register"]


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""
