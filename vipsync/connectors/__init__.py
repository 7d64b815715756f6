"""Connectors: one subpackage per outside system, each mapping its shapes to records."""
