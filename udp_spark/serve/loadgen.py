"""A bounded open-loop load generator for the Profile API (client on the same machine).

Requests are started at a fixed rate whatever the answers' speed, and each latency is
measured from the moment its request was due, so a stalled server shows in the numbers
(no coordinated omission)::

    python -m udp_spark.serve.loadgen --url http://127.0.0.1:8000 --key $K --rate 200 \\
        --seconds 20 --path /v1/profiles/C1 --path '/v1/lookup?email=a@b.co'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass

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


async def _run(url: str, headers: dict[str, str], paths: list[str], rate: float,
               seconds: float, concurrency: int) -> LoadResult:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=10) as client:
        async def one(path: str, due: float) -> None:
            nonlocal errors
            try:
                resp = await client.get(path)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                errors += resp.status_code >= 500
            except Exception:  # transport errors count, the run goes on
                errors += 1
            latencies.append((time.perf_counter() - due) * 1000)

        start = time.perf_counter()
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return LoadResult(len(latencies), errors, dict(sorted(statuses.items())),
                      len(latencies) / elapsed, elapsed, _quantile(ordered, 0.5),
                      _quantile(ordered, 0.9), _quantile(ordered, 0.99),
                      ordered[-1] if ordered else float("nan"))


def run_load(url: str, key: str, paths: list[str], *, rate: float = 200.0,
             seconds: float = 10.0, concurrency: int = 64) -> LoadResult:
    """Call ``paths`` round-robin at ``rate`` requests per second for ``seconds``."""
    return asyncio.run(_run(url, {"X-API-Key": key}, paths, rate, seconds, concurrency))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--path", action="append", required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = run_load(args.url, args.key, args.path, rate=args.rate, seconds=args.seconds)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
