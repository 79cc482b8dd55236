"""Typed HTTP client of the OEM service (docs/service-api.md), over HTTPS with mutual TLS.

The desktop tool talks to the service only through this class, never in-process. Every
state-changing call sends an ``Idempotency-Key`` derived from the board, the call and a hash of
the body, so a retry after a dropped connection replays the first answer instead of acting twice,
and a different body can never be mistaken for a retry. Errors arrive as RFC 9457 problems and
leave as ``ServiceError`` with the problem's one-line detail.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nusec.provision.ecdh import BoardHalf, ServerHalf
from nusec.provision.errors import ServiceError, UsageError, VerificationError

API = "/v1"
#: The service's detail for an Idempotency-Key that it holds for another body.
KEY_REUSED = "already used with a different request"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class TlsConfig:
    """Client certificate + key (operator, issued by the ICA) and the CA bundle that authenticates
    the service (the RootCA: also the trust anchor for every certificate check)."""

    client_cert: Path | None = None
    client_key: Path | None = None
    ca: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The client TLS context; ``UsageError`` naming the file at fault."""
        from nusec.provision.preflight import client_context

        if self.ca is None:
            raise UsageError(
                "--ca is required for HTTPS (the RootCA certificate that issued the service's chain)"
            )
        return client_context(self.ca, self.client_cert, self.client_key)


@dataclass(frozen=True)
class ChainAnswer:
    root_pem: str
    ica_pem: str


@dataclass(frozen=True)
class Nubl2Answer:
    image: bytes  # the signed NuBL2, as the service sent it
    public_key_pem: str  # the ROM root key it claims to verify with


@dataclass(frozen=True)
class CertAnswer:
    certificate_pem: str
    serial: str


@dataclass(frozen=True)
class SecureBootAnswer:
    public_xy: bytes
    public_key_pem: str
    created: bool


def _problem(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict):
            return str(body.get("detail") or body.get("title") or resp.reason_phrase)
    except ValueError:
        pass
    return resp.reason_phrase


class ServiceClient:
    """One HTTPS connection pool to the service, per board run (thread-confined)."""

    def __init__(
        self,
        base_url: str,
        tls: TlsConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        insecure_dev: bool = False,
        context: ssl.SSLContext | None = None,
    ) -> None:
        from nusec.provision.preflight import check_server_url

        self.base_url = check_server_url(base_url, insecure_dev=insecure_dev)
        self.tls = tls
        verify: ssl.SSLContext | bool = False  # plain HTTP: loopback with --insecure-dev only
        if self.base_url.startswith("https://"):
            verify = context if context is not None else tls.ssl_context()
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout)
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> httpx.Response:
        try:
            resp = self._http.request(
                method, API + path, json=json_body, content=content, headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            from nusec.provision.preflight import explain_transport_error

            msg = explain_transport_error(exc, self.base_url, self.tls.ca, self.tls.client_cert)
            if "not authenticated by --ca" in msg:
                raise VerificationError(msg) from None
            raise ServiceError(msg) from None
        self.bytes_sent += len(resp.request.content or b"")
        self.bytes_received += len(resp.content)
        if resp.status_code in (401, 403) and resp.status_code not in ok:
            raise ServiceError(
                f"the service refused {method} {path} for this client certificate "
                f"(--client-cert {self.tls.client_cert}): HTTP {resp.status_code}: {_problem(resp)}"
            )
        if resp.status_code not in ok:
            raise ServiceError(f"service refused {method} {path}: HTTP {resp.status_code}: {_problem(resp)}")
        return resp

    @staticmethod
    def idempotency_key(uid: bytes, call: str, body: bytes) -> str:
        return f"nusec-{uid.hex().upper()}-{call}-{hashlib.sha256(body).hexdigest()[:24]}"

    def _post_json(
        self, uid: bytes, call: str, path: str, body: dict[str, Any], key: str | None = None
    ) -> Any:
        raw = repr(sorted(body.items())).encode()
        headers = {"Idempotency-Key": key or self.idempotency_key(uid, call, raw)}
        return self._post_once_more_if_key_spoilt("POST", path, headers, json_body=body).json()

    def _post_once_more_if_key_spoilt(
        self, method: str, path: str, headers: dict[str, str], **kw: Any
    ) -> httpx.Response:
        """Send; if the service says our key "was already used with a different request" (a run
        killed mid-upload leaves the key claimed for the cut-off body), send once more under a
        fresh key. Safe because every call of this client is idempotent at the service (same
        board, same answer), the key only spares it the work."""
        try:
            return self._request(method, path, headers=headers, **kw)
        except ServiceError as exc:
            if KEY_REUSED not in str(exc):
                raise
        fresh = {**headers, "Idempotency-Key": f"{headers['Idempotency-Key']}-{time.time_ns()}"}
        return self._request(method, path, headers=fresh, **kw)

    @staticmethod
    def _obj(data: Any, *fields: str) -> dict[str, Any]:
        if not isinstance(data, dict) or any(f not in data for f in fields):
            raise VerificationError(f"service answer lacks {', '.join(fields)}")
        return data

    # -- endpoints ---------------------------------------------------------------------------
    def ca_chain(self) -> ChainAnswer:
        d = self._obj(self._request("GET", "/ca/chain").json(), "root_pem", "ica_pem")
        return ChainAnswer(str(d["root_pem"]), str(d["ica_pem"]))

    def nubl2(self) -> Nubl2Answer:
        """The signed NuBL2 and the ROM root key it verifies with (the caller checks both)."""
        d = self._obj(self._request("GET", "/nubl2").json(), "image_b64", "public_key_pem")
        try:
            image = base64.b64decode(str(d["image_b64"]), validate=True)
        except ValueError:
            raise VerificationError("NuBL2 answer is not base64") from None
        return Nubl2Answer(image, str(d["public_key_pem"]))

    def register(self, uid: bytes) -> dict[str, Any]:
        return self._obj(
            self._post_json(uid, "register", "/boards", {"uid": uid.hex().upper()}), "uid", "state"
        )

    def status(self, uid: bytes) -> dict[str, Any]:
        return self._obj(self._request("GET", f"/boards/{uid.hex().upper()}").json(), "uid", "state")

    def status_or_none(self, uid: bytes) -> dict[str, Any] | None:
        """The service's record of the board, or None when it is not registered."""
        resp = self._request("GET", f"/boards/{uid.hex().upper()}", ok=(200, 404))
        if resp.status_code == 404:
            return None
        return self._obj(resp.json(), "uid", "state")

    def certificate(self, uid: bytes) -> CertAnswer | None:
        """The board's current certificate as the service holds it (GET), or None."""
        resp = self._request("GET", f"/boards/{uid.hex().upper()}/certificate", ok=(200, 404))
        if resp.status_code == 404:
            return None
        d = self._obj(resp.json(), "certificate_pem")
        return CertAnswer(str(d["certificate_pem"]), str(d.get("serial", "")))

    def existing_secure_boot_key(self, uid: bytes) -> SecureBootAnswer | None:
        """The board's secure-boot public key if the service made (or imported) one (GET), or None."""
        resp = self._request("GET", f"/boards/{uid.hex().upper()}/secure-boot-key", ok=(200, 404))
        if resp.status_code == 404:
            return None
        return self._sb_answer(resp.json())

    def report_step(self, uid: bytes, step: str, detail: str = "") -> None:
        self._post_json(
            uid, f"report-{step}", f"/boards/{uid.hex().upper()}/steps", {"step": step, "detail": detail}
        )

    def certify(self, uid: bytes, csr_pem: str) -> CertAnswer:
        d = self._obj(
            self._post_json(uid, "certify", f"/boards/{uid.hex().upper()}/certificate", {"csr_pem": csr_pem}),
            "certificate_pem",
        )
        return CertAnswer(str(d["certificate_pem"]), str(d.get("serial", "")))

    def secure_boot_key(self, uid: bytes) -> SecureBootAnswer:
        return self._sb_answer(
            self._post_json(uid, "secure-boot-key", f"/boards/{uid.hex().upper()}/secure-boot-key", {})
        )

    def import_secure_boot_key(self, uid: bytes, body: dict[str, Any]) -> SecureBootAnswer:
        """Have the service import a bulk-batch image's key into its HSM for this board (``body``:
        ``pki.batch.key_import_body``); answers like ``secure_boot_key``."""
        return self._sb_answer(
            self._post_json(
                uid, "secure-boot-key-import", f"/boards/{uid.hex().upper()}/secure-boot-key/import", body
            )
        )

    def _sb_answer(self, data: Any) -> SecureBootAnswer:
        d = self._obj(data, "public_xy_hex")
        try:
            xy = bytes.fromhex(str(d["public_xy_hex"]))
        except ValueError:
            raise VerificationError("secure-boot key answer is not hex") from None
        if len(xy) != 64:
            raise VerificationError("secure-boot key answer is not a 64-byte X||Y")
        return SecureBootAnswer(xy, str(d.get("public_key_pem", "")), bool(d.get("created", False)))

    def sign_firmware(self, uid: bytes, firmware: bytes, *, header_size: int = 0x400) -> bytes:
        """Signed MCUboot image. ``header_size`` applies to a raw binary (the NuSec reference
        firmware links its vector table at slot + 0x400); an unsigned MCUboot input keeps its own."""
        headers = {
            "Idempotency-Key": self.idempotency_key(uid, f"firmware-h{header_size}", firmware),
            "Content-Type": "application/octet-stream",
        }
        path = f"/boards/{uid.hex().upper()}/firmware"
        params = {"header_size": str(header_size)}
        return self._post_once_more_if_key_spoilt(
            "POST", path, headers, content=firmware, params=params
        ).content

    def ecdh_begin(self, uid: bytes, half: BoardHalf, *, idempotency_key: str) -> ServerHalf:
        body = {"board_eph": half.board_eph.hex(), "board_sig": half.board_sig.hex()}
        d = self._obj(
            self._post_json(uid, "ecdh", f"/boards/{uid.hex().upper()}/key-agreement", body, idempotency_key),
            "session_id",
            "srv_eph",
            "srv_sig",
            "kc_server",
        )
        try:
            return ServerHalf(
                str(d["session_id"]),
                bytes.fromhex(str(d["srv_eph"])),
                bytes.fromhex(str(d["srv_sig"])),
                bytes.fromhex(str(d["kc_server"])),
            )
        except ValueError:
            raise VerificationError("key-agreement answer is not hex") from None

    def ecdh_confirm(self, uid: bytes, session_id: str, kc_board: bytes, *, idempotency_key: str) -> bool:
        path = f"/boards/{uid.hex().upper()}/key-agreement/{session_id}/confirm"
        d = self._obj(
            self._post_json(uid, "confirm", path, {"kc_board": kc_board.hex()}, idempotency_key), "confirmed"
        )
        return bool(d["confirmed"])
