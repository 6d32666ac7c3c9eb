"""Requests per second of ``python -m csa_keras.serve``: concurrent clients on the loopback interface.

The service is started as a user starts it (its own process, the default
model in the box unless ``--model`` names another), warmed up with three
requests, and then each row sends the same 640x480 photograph with one face (``face_detection.make_frames``) from
``clients`` threads at once, each waiting for its answer before sending the
next, until ``--requests`` answers have come back or ``--seconds`` have
passed, whichever is first. A row gives the answers per second, the median
and 95th-percentile latency, and the answers by HTTP status (a full queue
answers 503; the default queue of 8 holds every client here). Rows
alternate over ``--repeats`` rounds; medians are quoted.

    python benchmarks/serve.py [--clients 1 4] [--requests 100] [--seconds 60] [--repeats 3] [--json]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import face_detection


def _post(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/jpeg"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model: str | None = None) -> tuple[subprocess.Popen, str, float]:
    """The service in its own process: (process, its URL, seconds until ``/health`` answered)."""
    port = _free_port()
    command = [sys.executable, "-m", "csa_keras.serve", "--port", str(port), "--quiet"]
    if model:
        command += ["--model", model]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"error: the service stopped: {process.stderr.read()[-1000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return process, url, time.perf_counter() - started
        except OSError:
            if time.perf_counter() - started > 300:
                process.kill()
                raise SystemExit("error: the service did not answer /health within 300 s") from None
            time.sleep(0.2)


def load(url: str, photo: bytes, clients: int, requests: int, seconds: float) -> dict:
    """One row: ``clients`` threads posting ``photo`` until ``requests`` answers or ``seconds``."""
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    sent = [0]

    def client() -> None:
        while True:
            with lock:
                if sent[0] >= requests or time.perf_counter() >= deadline:
                    return
                sent[0] += 1
            start = time.perf_counter()
            status = _post(url + "/predict", photo)
            with lock:
                latencies.append(time.perf_counter() - start)
                statuses[status] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"clients": clients, "answers": len(latencies), "seconds": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 2),
            "latency_median_ms": round(1000 * statistics.median(ordered), 1),
            "latency_p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def measure(clients=(1, 4), requests: int = 100, seconds: float = 60.0, repeats: int = 3,
            model: str | None = None, log=print) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        face_detection.make_frames(Path(tmp), 1)
        photo = next(Path(tmp).iterdir()).read_bytes()
    process, url, startup = start_service(model)
    log(f"service up in {startup:.1f} s; {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})")
    try:
        for _ in range(3):
            _post(url + "/predict", photo)
        runs: dict[int, list[dict]] = {c: [] for c in clients}
        for _ in range(repeats):
            for c in clients:
                runs[c].append(load(url, photo, c, requests, seconds))
                log(f"{c} clients: {runs[c][-1]['requests_per_s']} answers/s")
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = []
    for c, measured in runs.items():
        statuses: collections.Counter = collections.Counter()
        for run in measured:
            statuses.update(run["statuses"])
        rows.append({"clients": c, "answers": sum(r["answers"] for r in measured),
                     "requests_per_s": statistics.median(r["requests_per_s"] for r in measured),
                     "latency_median_ms": statistics.median(r["latency_median_ms"] for r in measured),
                     "latency_p95_ms": statistics.median(r["latency_p95_ms"] for r in measured),
                     "statuses": dict(statuses), "runs": measured})
    from csa_keras.inference.loading import DEFAULT_MODEL

    return {"model": model or DEFAULT_MODEL, "repeats": repeats, "requests": requests,
            "seconds_bound": seconds, "startup_s": round(startup, 2), "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| clients | answers/s | latency median | latency p95 | answers by status |",
             "|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
        lines.append(f"| {row['clients']} | {row['requests_per_s']:.2f} | {row['latency_median_ms']:.0f} ms "
                     f"| {row['latency_p95_ms']:.0f} ms | {statuses} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients per row")
    parser.add_argument("--requests", type=int, default=100, help="answers per row at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per row at most")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; rows alternate, medians quoted")
    parser.add_argument("--model", help="a pretrained name, run directory or .keras file (default: the "
                                        "package's default model)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(tuple(args.clients), args.requests, args.seconds, args.repeats, args.model,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
