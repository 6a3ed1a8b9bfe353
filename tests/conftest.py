"""Shared fixtures: loopback HTTP and HTTPS servers, and HAR checking.

Reusable plain functions live in :mod:`tests.helpers`; this file only wires them into
pytest fixtures.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Union

import pytest

# Make ``harlem`` (when not pip-installed) and ``tests.helpers`` importable under any
# pytest invocation, not only ``python -m pytest`` from the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.helpers import TlsServer  # noqa: E402
from tests.helpers import check_har as _check_har  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A plain-HTTP :class:`~harlem.demo.server.LoopbackServer` on 127.0.0.1 for the session."""
    from harlem.demo.server import LoopbackServer

    with LoopbackServer() as running:
        yield running


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """An HTTPS loopback server with a trustme certificate for 127.0.0.1, localhost and ::1.

    Use ``tls.url`` / ``tls.localhost_url``, and ``tls.ca_file`` (PEM path) or
    ``tls.client_context()`` to trust it.
    """
    trustme = pytest.importorskip("trustme")
    from harlem.demo.server import LoopbackServer

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with LoopbackServer(ssl_context=context) as running:
        yield TlsServer(server=running, ca=ca, ca_file=str(ca_file))


@pytest.fixture
def check_har() -> Callable[[Union[str, Path, Dict[str, Any]]], Dict[str, Any]]:
    """:func:`tests.helpers.check_har`: validate a HAR path or dict, return the dict."""
    return _check_har
