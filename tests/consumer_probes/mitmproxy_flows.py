"""mitmproxy addon: write what ``mitmdump -n -r file.har`` loaded, for tests/test_consumers.py.

Runs inside mitmproxy (the consumers venv), never imported by the test suite. mitmproxy
replays the ``request`` and ``response`` hooks for every flow it reads from a file, so the
flows seen in ``response`` are exactly the entries it accepted. At the end it writes them to
the JSON file named by ``HARLEM_PROBE_OUT``: method, URL, status, and both bodies as mitmproxy
decoded them (base64), so the test can compare them with what the server sent.
"""

import base64
import json
import os


def _b64(data):
    return base64.b64encode(data or b"").decode("ascii")


class LoadedFlows:
    def __init__(self):
        self.flows = []

    def response(self, flow):
        self.flows.append({
            "method": flow.request.method,
            "url": flow.request.pretty_url,
            "status": flow.response.status_code,
            "request_body": _b64(flow.request.get_content(strict=False)),
            "response_body": _b64(flow.response.get_content(strict=False)),
        })

    def done(self):
        with open(os.environ["HARLEM_PROBE_OUT"], "w", encoding="utf-8") as out:
            json.dump(self.flows, out)


addons = [LoadedFlows()]
