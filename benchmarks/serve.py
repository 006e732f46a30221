"""Serving 4 prompt adapters on MiniLM: mixed batches vs one adapter per batch vs one model copy per adapter.

    OMP_NUM_THREADS=1 python benchmarks/serve.py                      # trains 4 tiny MEPT runs, then measures
    OMP_NUM_THREADS=1 python benchmarks/serve.py --runs a=RUN b=RUN c=RUN d=RUN --requests 600

Three ways to serve the same 4 adapters over HTTP (``mept serve``, localhost only):

- ``mixed``: one server, one backbone, requests for any adapter batched together (the default);
- ``one-adapter-per-batch``: one server, one backbone, but a forward serves one adapter's requests
  only (``--one-adapter-per-batch``: what a server that cannot mix prompt adapters does);
- ``copy-per-adapter``: four servers, one adapter (and one backbone copy) each.

Load (bounded): ``--clients`` closed-loop clients on keep-alive connections send ``--requests``
requests of ``--rows`` row(s) in total, adapters interleaved (request i names adapter i mod 4),
or stop at ``--max-seconds``. Reported per mode: throughput (requests/s), latency p50/p95 (ms,
client side, HTTP included), the server processes' CPU time per request (user + system, all
threads: the work done, which other jobs on the machine do not inflate), their memory (resident set after the load and its
peak, summed over processes), and the server's own count of forwards and rows per forward.

Fairness: with ``--pin`` (default when ``taskset`` exists) every server process is pinned to the
same CPU core and the clients run on another, so each mode gets one core for its model work
(four copies share that core, as four adapters share it in one server). The machine is shared
with other jobs: the load average before and after each mode is recorded beside the figures.
Precision: fp32, CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from script import run_command  # benchmarks/script.py: a failed child run is one error line

from mept.cli.flags import ListFlag

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "tests" / "fixtures" / "reviews"
MODES = ("mixed", "one-adapter-per-batch", "copy-per-adapter")


def texts() -> list[str]:
    from script import csv_rows  # benchmarks/script.py: one check for every CSV a script reads

    return [row["text"] for row in csv_rows(REVIEWS / "train.csv")]


def train_runs(folder: Path, steps: int) -> dict[str, str]:
    """Four small MEPT runs on MiniLM (the review fixture, one seed each): throughput does not depend on accuracy."""
    runs = {}
    for i in range(1, 5):
        out = folder / f"task{i}"
        if not (out / "metrics.json").exists():
            run_command([sys.executable, "-m", "mept.cli", "train", "--train-file", str(REVIEWS / "train.csv"),
                         "--task-name", f"task{i}", "--seed", str(i), "--output", str(out), "--overwrite",
                         "--max-steps", str(steps), "--batch-size", "8", "--max-length", "64", "--no-progress"],
                        stdout=subprocess.DEVNULL)
        runs[f"task{i}"] = str(out)
    return runs


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc: the work done, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of a process, MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def load(servers: dict[str, Any], names: list[str], rows: list[str], *, requests: int, clients: int,
         per_request: int, max_seconds: float) -> dict[str, Any]:
    """Closed-loop clients; ``servers[name]`` serves adapter ``name``. Returns latencies and counts."""
    from mept.serve.process import post_json

    lock = threading.Lock()
    state = {"next": 0, "latencies": [], "errors": 0}
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        connections: dict[int, Any] = {}
        while time.monotonic() < deadline:
            with lock:
                i = state["next"]
                if i >= requests:
                    return
                state["next"] += 1
            name = names[i % len(names)]
            server = servers[name]
            conn = connections.get(id(server)) or connections.setdefault(id(server), server.connection())
            body = {"adapter": name, "inputs": [rows[(i * per_request + k) % len(rows)] for k in range(per_request)]}
            t0 = time.perf_counter()
            try:
                status, _ = post_json(conn, "/predict", body)
            except (OSError, http.client.HTTPException):  # the server closed an idle keep-alive connection: reconnect
                conn.close()
                conn = connections[id(server)] = server.connection()
                try:
                    status, _ = post_json(conn, "/predict", body)
                except (OSError, http.client.HTTPException):
                    status = 0
            seconds = time.perf_counter() - t0
            with lock:
                if status == 200:
                    state["latencies"].append(seconds)
                else:
                    state["errors"] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - start, "latencies": state["latencies"], "errors": state["errors"]}


def run_mode(mode: str, runs: dict[str, str], args: argparse.Namespace, rows: list[str]) -> dict[str, Any]:
    from mept.serve.process import ServerProcess

    prefix = ["taskset", "-c", args.server_core] if args.pin else None
    env = {"OMP_NUM_THREADS": "1"}
    names = list(runs)
    if mode == "copy-per-adapter":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(runs)) as pool:  # four servers start side by side
            started = {name: pool.submit(ServerProcess, [f"{name}={path}"], env=env, prefix=prefix)
                       for name, path in runs.items()}
        processes = {name: future.result() for name, future in started.items()}
        servers = processes
    else:
        flags = ["--one-adapter-per-batch"] if mode == "one-adapter-per-batch" else []
        one = ServerProcess([f"{n}={p}" for n, p in runs.items()] + flags, env=env, prefix=prefix)
        processes, servers = {"all": one}, {name: one for name in names}
    try:
        for name in names * 2:  # warm-up: every adapter's first forwards, off the clock
            servers[name].predict(name, rows[:args.rows])
        before = {k: p.request("/health")[1] for k, p in processes.items()}
        load_before = os.getloadavg()[0]
        cpu_before = sum(cpu_seconds(p.proc.pid) for p in processes.values())
        result = load(servers, names, rows, requests=args.requests, clients=args.clients, per_request=args.rows,
                      max_seconds=args.max_seconds)
        load_after = os.getloadavg()[0]
        cpu = sum(cpu_seconds(p.proc.pid) for p in processes.values()) - cpu_before
        after = {k: p.request("/health")[1] for k, p in processes.items()}
        memory = [memory_mb(p.proc.pid) for p in processes.values()]
    finally:
        for p in processes.values():
            p.stop()
    lat = sorted(result["latencies"])
    forwards = sum(after[k]["batches"] - before[k]["batches"] for k in processes)
    served_rows = sum(after[k]["rows"] - before[k]["rows"] for k in processes)
    return {
        "mode": mode, "processes": len(processes), "requests_ok": len(lat), "errors": result["errors"],
        "seconds": round(result["seconds"], 2),
        "throughput_rps": round(len(lat) / result["seconds"], 1),
        "rows_per_second": round(len(lat) * args.rows / result["seconds"], 1),
        "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        "server_cpu_ms_per_request": round(1000 * cpu / len(lat), 1) if lat else None,
        "rss_mb": round(sum(m[0] for m in memory)), "peak_rss_mb": round(sum(m[1] for m in memory)),
        "forwards": forwards, "rows_per_forward": round(served_rows / forwards, 2) if forwards else None,
        "mixed_forwards": sum(after[k]["mixed_batches"] - before[k]["mixed_batches"] for k in processes),
        "loadavg_before": round(load_before, 2), "loadavg_after": round(load_after, 2),
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'mode':<24}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/req':>11}{'RSS MiB':>9}{'peak MiB':>10}"
            f"{'rows/fwd':>10}{'errors':>8}{'load':>12}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['mode']:<24}{r['throughput_rps']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}"
                     f"{r['server_cpu_ms_per_request']:>11}{r['rss_mb']:>9}"
                     f"{r['peak_rss_mb']:>10}{r['rows_per_forward']!s:>10}{r['errors']:>8}"
                     f"{r['loadavg_before']:>6}->{r['loadavg_after']:<5}")
    return "\n".join(lines)


def paired(results: list[dict[str, Any]]) -> str:
    """Each mode against ``mixed``, paired by round: CPU ms per request and requests/s (mept.harness.stats.paired_test)."""
    from mept.harness.stats import paired_test

    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_mode.setdefault(r["mode"], []).append(r)
    lines = []
    for mode, rounds in by_mode.items():
        if mode == "mixed" or "mixed" not in by_mode or len(rounds) != len(by_mode["mixed"]):
            continue
        for key, unit in (("server_cpu_ms_per_request", "CPU ms/request"), ("throughput_rps", "requests/s")):
            test = paired_test([r[key] for r in rounds], [r[key] for r in by_mode["mixed"]])
            lines.append(f"{mode} - mixed, {unit}: per round {', '.join(f'{d:+.1f}' for d in test['diffs'])}; "
                         f"mean {test['mean_diff']:+.1f}, p = {test['p_two_sided']:.3g} (paired t, {test['n']} rounds)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs=4, metavar="NAME=RUN", help="four runs of one backbone (default: train 4)")
    parser.add_argument("--work", help="where the 4 runs are trained (default: a temporary folder)")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="requests per mode (default %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default %(default)s)")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=120, help="time limit per mode (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over the modes, in turn (default %(default)s)")
    parser.add_argument("--modes", action=ListFlag, choices=MODES, default=list(MODES))
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin servers and clients to cores")
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--summarize", metavar="JSON", help="print the table and tests of a results file, run nothing")
    args = parser.parse_args()
    if args.summarize:
        results = json.loads(Path(args.summarize).read_text())["results"]
        print(table(results))
        print(paired(results))
        return
    args.pin = args.pin and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) > 1
    if args.pin:
        os.sched_setaffinity(0, {int(args.client_core)})
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mept-serve-bench-"))
    runs = dict(r.split("=", 1) for r in args.runs) if args.runs else train_runs(work, args.train_steps)
    rows = texts()
    results = []
    for _ in range(args.rounds):
        for mode in args.modes:
            results.append(run_mode(mode, runs, args, rows))
            print(json.dumps(results[-1]), flush=True)
    print()
    print(table(results))
    print(paired(results))
    info = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "python": platform.python_version(),
            "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "pinned": args.pin,
            "server_core": args.server_core if args.pin else None, "requests": args.requests,
            "clients": args.clients, "rows_per_request": args.rows, "precision": "fp32", "runs": runs}
    if args.out:
        Path(args.out).write_text(json.dumps({"info": info, "results": results}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
