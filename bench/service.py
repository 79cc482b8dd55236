"""OEM service throughput: board certificates issued per second and p50/p99 latency of
``POST /v1/boards/{uid}/certificate`` over HTTPS + mutual TLS (SoftHSM2, each service in its own
process): on SQLite with 1 and 8 clients, and with 8 clients on one real PostgreSQL server
behind 1 and behind 2 ``nusec serve`` processes (clients spread over them; scale-out).

Reference, measured in the same run on the same token: the CA call alone
(``pki.ca.issue_board_certificate_from_csr`` in-process, no HTTP, no database), i.e. the floor
the service adds its transport, store and audit costs to.

Usage: python bench/service.py [--boards 60] [--json]
With --json the last line is one JSON object: {"sqlite_1proc_1client": {"certs_per_s": X,
"p50_ms": X, "p99_ms": X}, "sqlite_1proc_8clients": {...}, "postgresql_1proc_8clients": {...},
"postgresql_2proc_8clients": {...}, "reference_in_process": {...}}. Without the PostgreSQL
server binaries the PostgreSQL rows are left out (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from pki.ca import Issuer, issue_board_certificate_from_csr  # noqa: E402
from pki.hsm.softhsm import SoftHsmDir  # noqa: E402
from pki.service.config import ServiceConfig  # noqa: E402
from pki.service.credentials import issue_service_credentials  # noqa: E402
from pki.service.server import run_in_background  # noqa: E402
from tests.service import pg  # noqa: E402
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
    urls: list[str], creds: tuple[Path, Path, Path], boards: list[Board], clients: int
) -> dict[str, float]:
    ca, cert, key = creds
    pools = [ServiceClient(urls[i % len(urls)], ca, cert, key) for i in range(clients)]
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
        base = ServiceConfig(
            hsm_uri=f"pkcs11:token={TOKEN};object=ica?module-path={token.module_path}",
            root_cert=work / "root.pem",
            ica_cert=work / "ica.pem",
            tls_cert=creds.server_cert,
            tls_key=creds.server_key,
            db_url=f"sqlite:///{work / 'service.db'}",
            port=0,
        )
        client_creds = (creds.ca_bundle, creds.operator.cert, creds.operator.key)
        results: dict[str, dict[str, float]] = {}

        def scenario(config: ServiceConfig, processes: int, clients: int, name: str) -> None:
            services = [
                run_in_background(config, env=token.environ(), migrate=i == 0) for i in range(processes)
            ]
            try:
                boards = [Board() for _ in range(args.boards)]
                results[name] = _run_clients([s.url for s in services], client_creds, boards, clients)
            finally:
                for service in services:
                    service.stop()

        scenario(base, 1, 1, "sqlite_1proc_1client")
        scenario(base, 1, 8, "sqlite_1proc_8clients")
        if pg.available():
            with pg.throwaway_postgres() as url:
                scenario(replace(base, db_url=url), 1, 8, "postgresql_1proc_8clients")
            with pg.throwaway_postgres() as url:
                scenario(replace(base, db_url=url), 2, 8, "postgresql_2proc_8clients")
        else:
            print(f"PostgreSQL rows left out: {pg.MISSING}", file=sys.stderr)
        results["reference_in_process"] = reference

    print(f"{'scenario':44} {'certs/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    labels = {
        "sqlite_1proc_1client": "SQLite, 1 process, 1 client",
        "sqlite_1proc_8clients": "SQLite, 1 process, 8 clients",
        "postgresql_1proc_8clients": "PostgreSQL, 1 process, 8 clients",
        "postgresql_2proc_8clients": "PostgreSQL, 2 processes, 8 clients",
        "reference_in_process": "reference: CA call in-process",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            print(f"{label:44} {r['certs_per_s']:>9} {r['p50_ms']:>9} {r['p99_ms']:>9}")
    print(f"({args.boards} certificates per service scenario; SoftHSM2; HTTPS + mTLS; {os.cpu_count()} CPUs)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
