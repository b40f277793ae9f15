"""A bounded open-loop load generator for the Profile API (client on the same machine).

Requests are due at a fixed rate whatever the answers' speed, and each latency is measured
from the moment its request was due, so a stalled server shows in the numbers (no
coordinated omission). Threads with kept-alive ``http.client`` connections: an asyncio
client in Python costs more CPU per request than the server does::

    python -m udp_spark.serve.loadgen --url http://127.0.0.1:8000 --key $K --rate 200 \\
        --seconds 20 --path /v1/profiles/C1 --path '/v1/lookup?email=a@b.co'

POST requests send JSON bodies, round-robin with the paths (``--body`` as JSON text or
``@file`` holding one JSON document or a JSON list of documents)::

    python -m udp_spark.serve.loadgen --url ... --key $K --rate 20 --method POST \\
        --path /v1/resolve --body @bodies.json
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int  # transport errors and 5xx
    statuses: dict[int, int]
    rate: float
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def _quantile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def _worker(host: str, port: int, headers: dict[str, str], paths: list[str], rate: float,
            total: int, start: float, counter: Iterator[int], lock: threading.Lock,
            latencies: list[float], statuses: dict[int, int], errors: list[int],
            method: str = "GET", bodies: list[bytes] | None = None) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while True:
        with lock:
            i = next(counter)
        if i >= total:
            break
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        code = 0
        try:
            body = bodies[i % len(bodies)] if bodies else None
            conn.request(method, paths[i % len(paths)], body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            code = resp.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        elapsed = (time.perf_counter() - due) * 1000
        with lock:
            latencies.append(elapsed)
            statuses[code] = statuses.get(code, 0) + 1
            if code == 0 or code >= 500:
                errors[0] += 1
    conn.close()


def run_load(url: str, key: str, paths: list[str], *, rate: float = 200.0,
             seconds: float = 10.0, workers: int = 16, method: str = "GET",
             bodies: list[Any] | None = None) -> LoadResult:
    """Call ``paths`` round-robin at ``rate`` requests per second for ``seconds`` from
    ``workers`` threads with kept-alive connections (standard library only); with
    ``bodies``, each request sends the next one as JSON."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]
    lock = threading.Lock()
    counter = itertools.count()
    start = time.perf_counter() + 0.05
    headers = {"X-API-Key": key}
    encoded = [json.dumps(b).encode() for b in bodies] if bodies else None
    if encoded:
        headers["Content-Type"] = "application/json"
    threads = [threading.Thread(target=_worker, args=(
        host, port, headers, paths, rate, total, start, counter, lock, latencies,
        statuses, errors, method, encoded), daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return LoadResult(len(ordered), errors[0], dict(sorted(statuses.items())),
                      len(ordered) / elapsed, elapsed, _quantile(ordered, 0.5),
                      _quantile(ordered, 0.9), _quantile(ordered, 0.99),
                      ordered[-1] if ordered else float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--path", action="append", required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--method", default="GET", choices=("GET", "POST"))
    parser.add_argument("--body", help="JSON body (or @file: one document or a list of "
                        "them, sent round-robin)")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    bodies = None
    if args.body is not None:
        text = Path(args.body[1:]).read_text() if args.body.startswith("@") else args.body
        doc = json.loads(text)
        bodies = doc if isinstance(doc, list) else [doc]
    result = run_load(args.url, args.key, args.path, rate=args.rate, seconds=args.seconds,
                      workers=args.workers, method=args.method, bodies=bodies)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
