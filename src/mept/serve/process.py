"""``mept serve`` as a child process, and a small JSON client for it (the tests and ``benchmarks/serve.py``).

:class:`ServerProcess` starts ``python -m mept.cli serve ... --port 0``, reads the port from the
line the server prints once it listens, and stops it with SIGTERM (a graceful shutdown).
Standard library only: talking to the server needs no HTTP package.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

READY = "listening on "


class ServerProcess:
    def __init__(self, args: list[str], *, startup_seconds: float = 180, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:
        """Start the server with ``args`` (runs and flags; ``--port 0`` is added) and wait until it listens.

        ``prefix`` goes before the interpreter (e.g. ``["taskset", "-c", "0"]``).
        """
        command = [*(prefix or []), sys.executable, "-m", "mept.cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if READY in line:
                    ready.set()
            ready.set()  # the process ended

        threading.Thread(target=read, daemon=True).start()
        ready.wait(startup_seconds)
        listening = [line for line in self.lines if READY in line]
        if not listening:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"mept serve did not start: {''.join(self.lines)}{err}")
        self.url = listening[0].split(READY, 1)[1].split()[0]
        host, port = self.url.rsplit("/", 1)[-1].rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)

    def request(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 120) -> tuple[int, Any, Any]:
        """(status, decoded JSON, headers) of one request; a body (JSON-encoded unless bytes) makes it a POST."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read()), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), exc.headers

    def predict(self, adapter: str, inputs: list[Any], **kw: Any) -> tuple[int, Any, Any]:
        return self.request("/predict", {"adapter": adapter, "inputs": inputs}, **kw)

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        """A keep-alive connection, for clients that send many requests."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def stop(self, timeout: float = 120) -> tuple[int, str, str]:
        """SIGTERM (if still running); returns the exit status, everything printed on stdout, and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + (out or ""), err


def post_json(conn: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, Any]:
    """One POST on a keep-alive connection: (status, decoded JSON)."""
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())
