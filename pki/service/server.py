"""Running the service: HTTPS with mutual TLS under uvicorn, in the foreground or in the background.

TLS: the server certificate (issued by the ICA) and key come from files; clients must present a
certificate that chains to RootCA/ICA (``CERT_REQUIRED``), checked during the handshake, so a
client without one never reaches the app. The verified leaf is handed to the app through the
ASGI scope state by ``ClientCertH11Protocol`` (uvicorn does not expose peer certificates).
Plain HTTP needs ``insecure_dev`` and a loopback address (``ServiceConfig.validate``).

``run_in_background(config)`` is what the demo and the provisioning tests use: it starts the
service on loopback (a subprocess by default, so its HSM session and GIL are its own) and returns
a handle with ``.url`` and ``.stop()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from uvicorn.protocols.http.h11_impl import H11Protocol

from pki.ca import Issuer
from pki.errors import CaError
from pki.hsm.pkcs11 import open_backend
from pki.hsm.roles import issuer_urls
from pki.hsm.uri import parse_pkcs11_uri
from pki.nubl2 import Nubl2Error, load_signed_nubl2
from pki.service.app import create_app
from pki.service.auth import CLIENT_CERT_STATE_KEY
from pki.service.config import ConfigError, ServiceConfig
from pki.service.context import ServiceContext
from pki.service.db import check_migrated, make_engine, make_sessions, upgrade

CONFIG_ENV = "NUSEC_SERVICE_CONFIG"
#: Log level of the background service process (``run_in_background``): the caller's, at most warning.
LOG_LEVEL_ENV = "NUSEC_SERVICE_LOG_LEVEL"
STARTUP_TIMEOUT_S = 60.0


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the TLS peer certificate in each request's scope state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # app_state is copied into every request's scope["state"]; give this connection its own.
        self.app_state = {**self.app_state, CLIENT_CERT_STATE_KEY: der}


def load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{what}: cannot read a PEM certificate from {path}: {type(exc).__name__}"
        ) from None


def open_context(config: ServiceConfig) -> ServiceContext:
    """Validate ``config``, open the HSM, check the ICA key against its certificate and that the
    database is migrated (``NotMigratedError`` naming ``nusec db upgrade`` otherwise)."""
    config.validate()
    root = load_certificate(config.root_cert, "root_cert")
    ica = load_certificate(config.ica_cert, "ica_cert")
    try:
        ica.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(f"ica_cert is not issued by root_cert ({type(exc).__name__})") from None
    if not config.insecure_dev and config.tls_cert is not None:
        server_cert = load_certificate(config.tls_cert, "tls_cert")
        try:
            server_cert.verify_directly_issued_by(ica)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigError(f"tls_cert is not issued by the ICA ({type(exc).__name__})") from None
    label = parse_pkcs11_uri(config.hsm_uri).object
    assert label is not None  # validate() checked it
    backend = open_backend(config.hsm_uri)
    try:
        # CRL DP / AIA of the ICA, as its ceremony recorded them on the token (docs/ceremony.md)
        issuer = Issuer(backend, label, ica, *issuer_urls(backend, label)).check()
    except CaError:
        backend.close()
        raise
    nubl2 = None
    if config.nubl2_image is not None:
        try:
            nubl2 = load_signed_nubl2(config.nubl2_image, backend.public_key, config.nubl2_key_label)
        except Nubl2Error as exc:
            backend.close()
            raise ConfigError(str(exc)) from None
    engine = make_engine(config.db_url)
    try:
        check_migrated(engine)  # migrations run only when asked: `nusec db upgrade`
    except BaseException:
        engine.dispose()
        backend.close()
        raise
    return ServiceContext(
        config=config,
        backend=backend,
        issuer=issuer,
        root_cert=root,
        engine=engine,
        sessions=make_sessions(engine),
        nubl2=nubl2,
    )


def tls_context(config: ServiceConfig) -> ssl.SSLContext:
    """Server-side TLS: our certificate, and client certificates required, chained to RootCA/ICA."""
    assert config.tls_cert is not None and config.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    context.load_verify_locations(cadata=config.ica_cert.read_text() + config.root_cert.read_text())
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def uvicorn_server(
    ctx: ServiceContext, *, log_level: str = "info", access_log: bool = True
) -> uvicorn.Server:
    config = ctx.config
    uv = uvicorn.Config(
        create_app(ctx),
        host=config.host,
        port=config.port,
        http=ClientCertH11Protocol,
        lifespan="off",
        log_level=log_level,
        log_config=None,  # uvicorn's records go to the root handlers (text or --log-json)
        access_log=access_log,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uv.load()
    if not config.insecure_dev:
        uv.ssl = tls_context(config)
    return uvicorn.Server(uv)


def _configure_logging(log_level: str) -> None:
    """One line per event on stderr: time, level, logger, message (request ids, error classes;
    never bodies: see ``pki.service.requests``). Tracebacks appear only at ``debug``."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)  # never SQL with its parameters
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(config: ServiceConfig, *, log_level: str = "info", configure_logging: bool = True) -> None:
    """Run the service in the foreground until interrupted (``nusec serve``, which sets up the
    CLI's logging itself: ``configure_logging=False``)."""
    if configure_logging:
        _configure_logging(log_level)
    ctx = open_context(config)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it
    # found: make that one a SystemExit, so the ``finally`` below still writes the audit's last
    # refusal counts and closes the HSM session.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        ctx.start()
        uvicorn_server(ctx, log_level=log_level).run()
    finally:
        ctx.close()


# --- background runner (tests, demo, bench) --------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _config_to_json(config: ServiceConfig) -> str:
    return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})


def config_from_json(text: str) -> ServiceConfig:
    raw: dict[str, Any] = json.loads(text)
    for name in ("root_cert", "ica_cert", "tls_cert", "tls_key", "nubl2_image"):
        if raw.get(name) is not None:
            raw[name] = Path(raw[name])
    return ServiceConfig(**raw)


@dataclass
class ServiceHandle:
    """A service started by ``run_in_background``; ``stop()`` (or leaving the ``with``) ends it."""

    url: str
    config: ServiceConfig
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _ctx: ServiceContext | None = field(default=None, repr=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int | None:
        """The service's process id (process mode, while it runs)."""
        return self._process.pid if self._process is not None else None

    def kill(self) -> None:
        """SIGKILL the service process, as a crash would (process mode; tests of recovery)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop the service and wait for it (idempotent)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            self._server = None
            self._thread = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        for name, value in self._saved_env.items():  # thread mode changed this process's environment
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_listening(host: str, port: int, alive: Callable[[], bool], log_path: Path | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise RuntimeError(f"the service exited during start-up:\n{tail}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the service did not listen on {host}:{port} within {STARTUP_TIMEOUT_S:.0f} s")


def run_in_background(
    config: ServiceConfig,
    *,
    mode: Literal["process", "thread"] = "process",
    env: dict[str, str] | None = None,
    migrate: bool = False,
) -> ServiceHandle:
    """Start the service on ``config.host``/``config.port`` (port 0: pick a free one) and return
    once it accepts connections.

    ``process`` (default) runs ``python -m pki.service.server`` with the config in
    ``$NUSEC_SERVICE_CONFIG`` and the HSM PIN inherited through the environment (``env``
    overrides, e.g. ``SOFTHSM2_CONF``); its log goes to ``handle.log_path``. ``thread`` runs
    uvicorn in a thread of this process (shares this process's PKCS#11 session; ``env`` is
    applied to ``os.environ`` until ``stop()``). ``migrate``: run the database migrations first
    (what ``nusec db upgrade`` does; the service itself never migrates).
    """
    child_env = {**os.environ, **(env or {})}
    config.validate(child_env)
    if migrate:
        engine = make_engine(config.db_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    if config.port == 0:
        config = ServiceConfig(**{**asdict(config), "port": free_port(config.host)})
    scheme = "http" if config.insecure_dev else "https"
    url = f"{scheme}://{config.host}:{config.port}"
    if mode == "thread":
        saved = {name: os.environ.get(name) for name in env or {}}
        os.environ.update(env or {})  # one process: the PKCS#11 library reads SOFTHSM2_CONF from here
        try:
            ctx = open_context(config)
        except BaseException:
            ServiceHandle(url, config, _saved_env=saved).stop()
            raise
        try:
            ctx.start()
        except BaseException:
            ServiceHandle(url, config, _ctx=ctx, _saved_env=saved).stop()
            raise
        server = uvicorn_server(ctx, log_level="warning", access_log=False)
        thread = threading.Thread(target=server.run, name="nusec-service", daemon=True)
        thread.start()
        handle = ServiceHandle(url, config, None, _server=server, _thread=thread, _ctx=ctx, _saved_env=saved)
        try:
            _wait_listening(config.host, config.port, thread.is_alive, None)
        except BaseException:
            handle.stop()
            raise
        return handle

    log_fd, log_name = tempfile.mkstemp(prefix="nusec-service-", suffix=".log")
    child_env[CONFIG_ENV] = _config_to_json(config)
    level = min(logging.WARNING, logging.getLogger("pki").getEffectiveLevel())
    child_env.setdefault(LOG_LEVEL_ENV, logging.getLevelName(level).lower())
    process = subprocess.Popen(
        [sys.executable, "-m", "pki.service.server"],
        env=child_env,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    os.close(log_fd)
    handle = ServiceHandle(url, config, Path(log_name), _process=process)
    try:
        _wait_listening(config.host, config.port, lambda: process.poll() is None, handle.log_path)
    except BaseException:
        handle.stop()
        raise
    return handle


def main() -> None:
    """Entry point of the background subprocess: config from ``$NUSEC_SERVICE_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise SystemExit(f"{CONFIG_ENV} is not set")
    serve(config_from_json(text), log_level=os.environ.get(LOG_LEVEL_ENV, "warning"))


if __name__ == "__main__":
    main()
