"""The builder's batching: the structure that keeps recording off the program's request path."""

from __future__ import annotations

import threading

import requests

from harlem import pipeline
from harlem.recording import Recording
from harlem.exporters.model import ModelHarExporter


def test_a_burst_of_requests_wakes_the_builder_once_per_batch_not_once_per_request(
        server, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 60.0)  # one batch holds the whole burst
    exporter = ModelHarExporter()
    with Recording(exporter):
        session = requests.Session()
        pipeline.flush()  # the builder is idle, waiting for a first item
        wakes = []
        wake = pipeline._wake
        monkeypatch.setattr(wake, "set", lambda: (wakes.append(1), threading.Event.set(wake)))
        for _ in range(50):
            session.get(server.url + "/json").content
        woken = len(wakes)
        assert pipeline.flush(30), "a flush must cut the batching delay short"
    assert woken <= 2, woken  # the first exchange of the batch (and at most one more)
    assert len(exporter.entries) == 50


def test_a_page_reaches_the_exporter_before_its_entries_even_within_one_batch(server, monkeypatch):
    import harlem

    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 60.0)
    exporter = ModelHarExporter()
    with Recording(exporter):
        requests.get(server.url + "/json?before").content
        with harlem.page("checkout"):
            requests.get(server.url + "/json?inside").content
    model = exporter.model
    refs = {e.request.url.rsplit("?", 1)[1]: e.pageref for e in model.log.entries}
    titles = {p.id: p.title for p in model.log.pages}
    assert titles[refs["inside"]] == "checkout"
    assert refs["before"] == pipeline.DEFAULT_PAGE_ID
