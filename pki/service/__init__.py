"""The OEM REST service: FastAPI over the HSM-backed CA (``pki.ca``) and key backend (``pki.hsm``).

Start it with ``nusec serve`` or, from tests and the demo, ``pki.service.server.run_in_background``.
The API is documented in ``docs/service-api.md`` and published at ``/openapi.json``.
"""

from __future__ import annotations

__version__ = "1.0.0"
