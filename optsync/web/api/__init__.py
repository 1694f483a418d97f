"""The JSON API under ``/api/v1``: one router per resource, assembled here.

A new resource (the Salesforce setup checks, sync runs) is one more module with a
``router`` and one more entry in ``RESOURCES``.
"""

from __future__ import annotations

from fastapi import APIRouter

from optsync.web.api import (
    health,
    links,
    persons,
    pushes,
    suppression,
    sync_runs,
    sync_settings,
    unsubscribes,
)

PREFIX = "/api/v1"

RESOURCES = (
    persons,
    unsubscribes,
    pushes,
    suppression,
    links,
    sync_settings,
    sync_runs,
    health,
)


def api_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    for resource in RESOURCES:
        router.include_router(resource.router)
    return router
