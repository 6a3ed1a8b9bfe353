"""Reusable test helpers: HAR checking and the TLS test server's details.

Import them with ``from tests.helpers import check_har`` (``tests/conftest.py`` makes the
repository root importable).
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Union

from harlem.har.validate import HarValidationError, check_schema, validate_har, validate_har_file

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The reference HAR schema shared by the team, outside the repository. Every HAR a test
#: produces is also checked against it when it exists; the suite passes without it.
REFERENCE_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "har-schema"


def check_har(har: Union[str, Path, Dict[str, Any]]) -> Dict[str, Any]:
    """Validate a HAR (a file path or a parsed dict) and return it as a dict.

    A path goes through :func:`validate_har_file` (bytes, UTF-8, no NaN), a dict through
    :func:`validate_har`. Both also meet the reference schema when it is present, so that
    a drift between the packaged schema copy and the team's reference is noticed.
    """
    if isinstance(har, dict):
        validate_har(har)
        data = har
    else:
        data = validate_har_file(har)
    if REFERENCE_SCHEMA_DIR.is_dir() and (REFERENCE_SCHEMA_DIR / "har.json").is_file():
        problems = check_schema(data, REFERENCE_SCHEMA_DIR)
        if problems:
            raise HarValidationError([f"(reference schema) {p}" for p in problems])
    return data


@dataclass
class TlsServer:
    """A TLS loopback server and what a client needs to trust it.

    The certificate, issued by a throwaway trustme CA, names ``127.0.0.1``, ``localhost``
    and ``::1``, so both :attr:`url` and :attr:`localhost_url` verify.
    """

    server: Any  # harlem.demo.server.LoopbackServer
    ca: Any  # trustme.CA
    ca_file: str

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return str(self.server.url)

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def localhost_url(self) -> str:
        """``https://localhost:PORT``: the same server reached by name (SNI, hostname check)."""
        return f"https://localhost:{self.server.port}"

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the test CA (for urllib, aiohttp...)."""
        return ssl.create_default_context(cafile=self.ca_file)


class Recorded:
    """One recorder of ``recorder_class`` into a model exporter; :attr:`entries` are checked."""

    def __init__(self, recorder_class: Any, **options: Any):
        from harlem import ModelHarExporter

        self.exporter = ModelHarExporter()
        self.recorder = recorder_class(self.exporter, **options)

    @property
    def entries(self) -> "list[Dict[str, Any]]":
        from harlem import pipeline

        pipeline.flush()
        return check_har(self.exporter.to_dict())["log"]["entries"]

    def only_entry(self) -> Dict[str, Any]:
        entries = self.entries
        assert len(entries) == 1, [e["request"]["url"] for e in entries]
        return entries[0]


@contextlib.contextmanager
def recorders_of(recorder_class: Any) -> Iterator[Any]:
    """Body of a ``record`` fixture: ``with record(**options) as rec:`` records into ``rec``
    until the block ends; recorders a failed test left running are stopped afterwards, so no
    library stays patched."""
    started: list = []

    @contextlib.contextmanager
    def start(**options: Any) -> Iterator[Recorded]:
        recorded = Recorded(recorder_class, **options)
        recorded.recorder.start()
        started.append(recorded.recorder)
        try:
            yield recorded
        finally:
            recorded.recorder.stop()

    try:
        yield start
    finally:
        for recorder in started:
            recorder.stop()


@contextlib.contextmanager
def one_answer_server(answer: bytes) -> Iterator[int]:
    """A raw server on 127.0.0.1 that reads one request's head and sends ``answer`` bytes
    exactly as given (what aiohttp.web would never write); yields its port."""
    import socket
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                while b"\r\n\r\n" not in connection.recv(65536):
                    pass
                connection.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        thread.join(10)
