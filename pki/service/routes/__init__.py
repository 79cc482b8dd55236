"""The /v1 endpoints, one router module per resource: ``service`` (health, CA chain), ``boards``,
``certificate``, ``secure_boot_key`` (and batch import), ``firmware``, ``key_agreement``, ``audit``.

Each state-changing handler follows one shape: check the caller and the board's state, do the
HSM work outside any database lock, then write the effect and its audit row in one transaction.
Refusals are audited too. Handlers are plain ``def`` (FastAPI runs them in its thread pool), so
PKCS#11 and SQLAlchemy calls never block the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter

from pki.service.routes import audit, boards, certificate, firmware, key_agreement, secure_boot_key, service

ROUTERS: tuple[APIRouter, ...] = tuple(
    m.router for m in (service, boards, certificate, secure_boot_key, firmware, key_agreement, audit)
)
