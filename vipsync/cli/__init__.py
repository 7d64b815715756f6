"""The ``vipsync`` command."""
