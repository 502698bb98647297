"""A small load generator: POSTs pre-signed requests from threads, one connection each, reused
while the server keeps it alive (http.client reconnects after a server that closes it).

    python bench/load.py PORT REQUESTS_FILE THREADS   (REQUESTS_FILE: JSON lines [body, sig])

Prints JSON: requests, errors, seconds, requests_per_s, p50_ms, p99_ms.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def main() -> None:
    port, path, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with open(path) as lines:
        work = [json.loads(line) for line in lines]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cursor = [0]

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while True:
            with lock:
                if cursor[0] >= len(work):
                    break
                body, signature = work[cursor[0]]
                cursor[0] += 1
            headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
            started = time.perf_counter()
            try:
                conn.request("POST", "/webhooks/stripe", body=body.encode(), headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        json.dumps(
            {
                "requests": len(work),
                "errors": errors[0],
                "seconds": round(elapsed, 3),
                "requests_per_s": round(len(work) / elapsed, 1),
                "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
