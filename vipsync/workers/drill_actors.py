"""Serve the fire-drill jobs too: ``dramatiq vipsync.workers.actors vipsync.workers.drill_actors``."""

from vipsync.workers.drill import register

__all__: list[str] = []

register()
