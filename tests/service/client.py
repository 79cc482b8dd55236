"""A small typed HTTP client for the OEM service, used by the service tests and bench.

It speaks to the service only over HTTPS with a client certificate, exactly as the desktop tool
must; it is deliberately thin (one method per endpoint, raw ``httpx.Response`` available).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx


def tls_context(ca_pem: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_pem))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


class ServiceError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        try:
            self.problem: dict[str, Any] = response.json()
        except ValueError:
            self.problem = {}
        super().__init__(f"{self.status}: {self.problem.get('detail', response.text[:200])}")


class ServiceClient:
    """One mTLS connection pool to the service."""

    def __init__(
        self, base_url: str, ca_pem: Path, cert: Path | None, key: Path | None, timeout: float = 30
    ) -> None:
        self.http = httpx.Client(base_url=base_url, verify=tls_context(ca_pem, cert, key), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise ServiceError(response)
        return response.json()

    def post(self, path: str, body: Any = None, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.post(path, json=body, headers=headers, **kw)

    # one method per endpoint
    def chain(self) -> dict[str, str]:
        return dict(self._json(self.http.get("/v1/ca/chain")))

    def register(self, uid: str, key: str | None = None) -> dict[str, Any]:
        return dict(self._json(self.post("/v1/boards", {"uid": uid}, key)))

    def status(self, uid: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/boards/{uid}")))

    def report(self, uid: str, step: str, detail: str = "") -> dict[str, Any]:
        return dict(self._json(self.post(f"/v1/boards/{uid}/steps", {"step": step, "detail": detail})))

    def certify(self, uid: str, csr_pem: str, key: str | None = None) -> dict[str, Any]:
        return dict(self._json(self.post(f"/v1/boards/{uid}/certificate", {"csr_pem": csr_pem}, key)))

    def certificate(self, uid: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/boards/{uid}/certificate")))

    def secure_boot_key(self, uid: str) -> dict[str, Any]:
        return dict(self._json(self.post(f"/v1/boards/{uid}/secure-boot-key")))

    def get_secure_boot_key(self, uid: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/boards/{uid}/secure-boot-key")))

    def sign_firmware(self, uid: str, data: bytes, **params: Any) -> httpx.Response:
        return self.http.post(
            f"/v1/boards/{uid}/firmware",
            content=data,
            params=params,
            headers={"Content-Type": "application/octet-stream"},
        )

    def key_agreement(self, uid: str, board_eph: bytes, board_sig: bytes) -> dict[str, Any]:
        body = {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()}
        return dict(self._json(self.post(f"/v1/boards/{uid}/key-agreement", body)))

    def confirm(self, uid: str, session_id: str, kc_board: bytes) -> httpx.Response:
        return self.post(f"/v1/boards/{uid}/key-agreement/{session_id}/confirm", {"kc_board": kc_board.hex()})

    def audit(self, after: int = 0, limit: int = 100) -> httpx.Response:
        return self.http.get("/v1/audit", params={"after": after, "limit": limit})

    def all_audit_entries(self) -> list[dict[str, Any]]:
        """Every audit entry, following ``next_after`` page by page."""
        entries: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.audit(after=after, limit=1000).json()
            entries += page["entries"]
            if page["next_after"] is None:
                return entries
            after = page["next_after"]

    def audit_verify(self) -> httpx.Response:
        return self.http.get("/v1/audit/verify")
