"""OEM service throughput: board certificates issued per second and p50/p99 latency of
``POST /v1/boards/{uid}/certificate`` over HTTPS + mutual TLS, with 1 and 8 concurrent clients
(SoftHSM2 + SQLite, the service in its own process).

Reference, measured in the same run on the same token: the CA call alone
(``pki.ca.issue_board_certificate_from_csr`` in-process, no HTTP, no database), i.e. the floor
the service adds its transport, store and audit costs to.

Usage: python bench/service.py [--boards 60] [--json]
With --json the last line is one JSON object:
{"clients_1": {"certs_per_s": X, "p50_ms": X, "p99_ms": X}, "clients_8": {...},
 "reference_in_process": {"certs_per_s": X, "p50_ms": X, "p99_ms": X}}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from pki.ca import Issuer, issue_board_certificate_from_csr  # noqa: E402
from pki.hsm.softhsm import SoftHsmDir  # noqa: E402
from pki.service.config import ServiceConfig  # noqa: E402
from pki.service.credentials import issue_service_credentials  # noqa: E402
from pki.service.server import run_in_background  # noqa: E402
from tests.service.board import Board  # noqa: E402
from tests.service.client import ServiceClient  # noqa: E402
from tests.service.conftest import make_ca  # noqa: E402

TOKEN = "nusec-bench"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _figures(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    return {
        "certs_per_s": round(len(latencies_s) / wall_s, 1),
        "p50_ms": round(_percentile(latencies_s, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(latencies_s, 0.99) * 1000, 1),
    }


def _run_clients(
    url: str, creds: tuple[Path, Path, Path], boards: list[Board], clients: int
) -> dict[str, float]:
    ca, cert, key = creds
    pools = [ServiceClient(url, ca, cert, key) for _ in range(clients)]
    csrs = {b.uid_hex: b.csr_pem() for b in boards}
    for i, board in enumerate(boards):  # registration is not what is measured
        pools[i % clients].register(board.uid_hex)
    for client in pools:  # warm the TLS connections
        client.chain()
    shares = [boards[i::clients] for i in range(clients)]

    def work(index: int) -> list[float]:
        out = []
        for board in shares[index]:
            start = time.perf_counter()
            pools[index].certify(board.uid_hex, csrs[board.uid_hex])
            out.append(time.perf_counter() - start)
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(work, range(clients)) for x in part]
    wall = time.perf_counter() - start
    for client in pools:
        client.close()
    return _figures(latencies, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=60, help="certificates per scenario (default 60)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nusec-bench-service-") as tmp:
        work = Path(tmp)
        token = SoftHsmDir.create(work / "hsm").init_token(TOKEN)
        with token.open_backend() as backend:
            root_cert, ica_cert = make_ca(backend, "root", "ica", "Bench")
            ica = Issuer(backend, "ica", ica_cert)
            creds = issue_service_credentials(ica, root_cert, work / "tls")

            # Reference: the CA alone, in-process, same token.
            ref_boards = [Board() for _ in range(max(10, args.boards // 2))]
            ref_csrs = [(b.uid, b.csr_pem()) for b in ref_boards]
            latencies = []
            start = time.perf_counter()
            for uid, csr in ref_csrs:
                t0 = time.perf_counter()
                issue_board_certificate_from_csr(ica, csr.encode(), uid)
                latencies.append(time.perf_counter() - t0)
            reference = _figures(latencies, time.perf_counter() - start)

        (work / "root.pem").write_bytes(root_cert.public_bytes(serialization.Encoding.PEM))
        (work / "ica.pem").write_bytes(ica_cert.public_bytes(serialization.Encoding.PEM))
        config = ServiceConfig(
            hsm_uri=f"pkcs11:token={TOKEN};object=ica?module-path={token.module_path}",
            root_cert=work / "root.pem",
            ica_cert=work / "ica.pem",
            tls_cert=creds.server_cert,
            tls_key=creds.server_key,
            db_url=f"sqlite:///{work / 'service.db'}",
            port=0,
        )
        results: dict[str, dict[str, float]] = {}
        with run_in_background(config, env=token.environ(), migrate=True) as service:
            client_creds = (creds.ca_bundle, creds.operator.cert, creds.operator.key)
            for clients in (1, 8):
                boards = [Board() for _ in range(args.boards)]
                results[f"clients_{clients}"] = _run_clients(service.url, client_creds, boards, clients)
        results["reference_in_process"] = reference

    print(f"{'scenario':34} {'certs/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    labels = {
        "clients_1": "service, 1 client (HTTPS+mTLS)",
        "clients_8": "service, 8 clients (HTTPS+mTLS)",
        "reference_in_process": "reference: CA call in-process",
    }
    for key, label in labels.items():
        r = results[key]
        print(f"{label:34} {r['certs_per_s']:>9} {r['p50_ms']:>9} {r['p99_ms']:>9}")
    print(f"({args.boards} certificates per service scenario; SoftHSM2 + SQLite; {os.cpu_count()} CPUs)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
