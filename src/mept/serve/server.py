"""``mept serve RUN [NAME=RUN ...]``: load the backbone once and every run's adapter, then serve HTTP.

FastAPI + uvicorn (our choice): the standard, well-kept Python stack for a JSON API -- typed
request/response models give the OpenAPI schema for free, uvicorn drains in-flight requests on
SIGTERM -- and both are small next to torch. Serving libraries built on them (BentoML, Ray
Serve, LitServe) add their own packaging, workers and batching; the batching here must know that
rows of different adapters share a forward, which is ours (:mod:`mept.serve.batcher`).

Everything that can be wrong with the runs, the flags or the address is one ``error:`` line
before the server binds. The socket is bound here (``--port 0`` picks a free port), then the
line ``mept serve: listening on http://HOST:PORT`` is printed once the app has started. SIGTERM
or Ctrl-C stops taking connections, answers the requests in flight (up to
``--shutdown-timeout`` seconds), and exits 0.
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path
from typing import Any

from mept.errors import MeptError
from mept.multi_adapter import MultiAdapterModel
from mept.serve.limits import Limits

EXTRA = 'pip install "mept[serve]"'


def add_parser(sub: Any) -> None:
    """``mept serve``'s flags (the defaults are :class:`~mept.serve.limits.Limits`')."""
    defaults = Limits()
    sv = sub.add_parser("serve", help="serve trained runs over HTTP: one backbone, every adapter, mixed batches")
    sv.add_argument("runs", nargs="+", metavar="RUN", help="run folders, each as RUN (named after its folder) or NAME=RUN")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    sv.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size, help="rows per forward (default %(default)s)")
    sv.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                    help="how long a request waits for others to share its batch (default %(default)s)")
    sv.add_argument("--max-queue", type=int, default=defaults.max_queue,
                    help="rows waiting for the model; beyond it requests get 503 at once (default %(default)s)")
    sv.add_argument("--max-inputs", type=int, default=defaults.max_inputs, help="inputs per request (default %(default)s)")
    sv.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                    help="request body size (default %(default)s)")
    sv.add_argument("--request-timeout", type=float, default=defaults.request_timeout,
                    help="seconds a request may wait for its answer before 503 (default %(default)s)")
    sv.add_argument("--one-adapter-per-batch", action="store_true",
                    help="batch only requests for the same adapter together (what a server that cannot mix "
                         "adapters does; for comparison)")
    sv.add_argument("--shutdown-timeout", type=float, default=30.0,
                    help="on SIGTERM, seconds to finish the requests in flight (default %(default)s)")
    sv.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                    help="uvicorn's log level; info logs every request (default %(default)s)")


def run_command(args: Any) -> int:
    limits = Limits(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                    max_inputs=args.max_inputs, max_request_bytes=args.max_request_bytes,
                    request_timeout=args.request_timeout, mix_adapters=not args.one_adapter_per_batch)
    return serve(args.runs, host=args.host, port=args.port, limits=limits, shutdown_timeout=args.shutdown_timeout,
                 log_level=args.log_level)


def parse_runs(specs: list[str]) -> dict[str, str]:
    """``RUN`` (named after its folder) or ``NAME=RUN``, in order; names must differ."""
    runs: dict[str, str] = {}
    for spec in specs:
        name, path = spec.split("=", 1) if "=" in spec else (Path(spec).resolve().name, spec)
        if not Path(path).exists():
            raise MeptError(f"run folder {path} does not exist")
        if name in runs:
            raise MeptError(f"two runs are named {name!r} ({runs[name]} and {path}); name them apart with NAME=RUN")
        runs[name] = path
    return runs


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or one line saying why not."""
    if not 0 <= port <= 65535:
        raise MeptError(f"--port must be 0-65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise MeptError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise MeptError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    return sock


def serve(specs: list[str], *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          shutdown_timeout: float = 30.0, log_level: str = "warning") -> int:
    try:
        import uvicorn

        from mept.serve.app import create_app
    except ImportError as exc:
        raise MeptError(f"mept serve needs FastAPI and uvicorn ({exc.name} is not installed): {EXTRA}") from None
    limits = limits or Limits()
    if not shutdown_timeout > 0:
        raise MeptError(f"--shutdown-timeout must be > 0, got {shutdown_timeout!r}")
    runs = parse_runs(specs)
    model = MultiAdapterModel.from_runs(runs)
    sock = bind(host, port)
    where = sock.getsockname()
    url = f"http://{host if ':' not in host else f'[{host}]'}:{where[1]}"
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {host}: the server is reachable from other machines; mept serve has no "
              f"authentication", file=sys.stderr)

    def ready() -> None:
        names = ", ".join(f"{a.name} ({a.config.method})" for a in model.adapters.values())
        print(f"mept serve: {len(model.adapters)} adapter(s): {names}", flush=True)
        print(f"mept serve: listening on {url} (GET /health, /adapters, /openapi.json; POST /predict)", flush=True)

    app = create_app(model, limits, on_ready=ready)
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("debug", "info"),
                            timeout_graceful_shutdown=shutdown_timeout, lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn takes SIGINT/SIGTERM while it runs and raises them again once it has shut down gracefully;
    # they are ignored by then (the shutdown they asked for is done), so the process ends with status 0
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    stats = app.state.batcher.stats
    print(f"mept serve: stopped; answered {stats.requests} request(s), {stats.rows} row(s) in {stats.batches} "
          f"batch(es)", flush=True)
    return 0
