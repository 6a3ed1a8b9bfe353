"""The benchmark's loopback HTTP/1.1 server, run in a process of its own.

A separate process, so that the server never competes with the measured program for its GIL;
a bare :class:`asyncio.Protocol` with canned answers rather than a web framework, so that the
server's own time per request is small and the client's overhead (what harlem adds) is not
diluted by a slow server. Keep-alive is honoured; ``Connection: close`` closes.

Routes (``GET``; anything else answers 404):

* ``/json``: a small JSON object with the headers a typical API sends.
* ``/large?size=N``: ``N`` bytes of ``application/octet-stream`` with ``Content-Length``.

Run ``python bench/server.py [--cpu N]``: it prints its port on one line once listening and
serves until its standard input closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from email.utils import formatdate
from typing import Dict, Optional
from urllib.parse import parse_qs, urlsplit

JSON_BODY = (b'{"id":12345,"name":"harlem","tags":["http","har","bench"],'
             b'"nested":{"ok":true,"count":42},"unicode":"\\u2713"}')
_BLOCK = bytes(range(256)) * 256  # 64 KiB
_MAX_LARGE = 256 << 20


def _head(status: str, content_type: str, length: int, close: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        f"Date: {formatdate(time.time(), usegmt=True)}",
        "Server: harlem-bench",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        "Cache-Control: no-store",
        "X-Request-Id: 6f1c2a9e-3b7d-4e0f-9a51-2c8d4b7e1f00",
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_large_bodies: Dict[int, bytes] = {}


def _large(size: int) -> bytes:
    body = _large_bodies.get(size)
    if body is None:
        body = (_BLOCK * (size // len(_BLOCK) + 1))[:size]
        _large_bodies.clear()  # keep one size only: the memory workload asks for one
        _large_bodies[size] = body
    return body


def answer(target: str, close: bool) -> bytes:
    """The whole response (head and body) to ``GET target``."""
    parts = urlsplit(target)
    if parts.path == "/json":
        return _head("200 OK", "application/json; charset=utf-8", len(JSON_BODY), close) + JSON_BODY
    if parts.path == "/large":
        try:
            size = int(parse_qs(parts.query).get("size", ["1048576"])[0])
        except ValueError:
            size = -1
        if 0 <= size <= _MAX_LARGE:
            body = _large(size)
            return _head("200 OK", "application/octet-stream", size, close) + body
    text = b"not found"
    return _head("404 Not Found", "text/plain; charset=utf-8", len(text), close) + text


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.skip = 0  # request body bytes still to discard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            if self.skip:
                dropped = min(self.skip, len(self.buffer))
                del self.buffer[:dropped]
                self.skip -= dropped
                if self.skip:
                    return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[:end + 4]
            self._serve(head)

    def _serve(self, head: str) -> None:
        assert self.transport is not None
        request_line, _, header_text = head.partition("\r\n")
        method, target, version = (request_line.split(" ") + ["", "", ""])[:3]
        headers = {}
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.skip = int(headers.get("content-length", "0") or 0)
        close = headers.get("connection") == "close" or version == "HTTP/1.0"
        self.transport.write(answer(target if method in ("GET", "HEAD") else "/404", close))
        if close:
            self.transport.close()
            self.transport = None


async def _serve(ready: "asyncio.Future[int]") -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", 0, backlog=1024)
    ready.set_result(server.sockets[0].getsockname()[1])
    stdin_closed = loop.create_future()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stdin_closed.set_result, None)

    loop.run_in_executor(None, watch_stdin)
    await stdin_closed
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", type=int, help="pin the server to this CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    async def run() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(_serve(ready))
        print(await ready, flush=True)
        await task

    asyncio.run(run())
    return 0


class ServerProcess:
    """``with ServerProcess() as server: server.url`` runs the server in a child process."""

    def __init__(self, cpu: Optional[int] = None):
        self.cpu = cpu
        self.process: Optional[subprocess.Popen] = None
        self.url = ""

    def __enter__(self) -> "ServerProcess":
        command = [sys.executable, os.path.abspath(__file__)]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.process.kill()
            raise RuntimeError("the benchmark server did not start")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


if __name__ == "__main__":
    sys.exit(main())
