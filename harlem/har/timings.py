"""HAR ``timings`` and ``time`` from an exchange's phase marks: the one place for this arithmetic.

Each phase ends at its own mark and starts where the previous phase that happened ended, so
the phases tile the whole exchange without gaps or overlaps (a pause between connecting and
sending counts as sending, as in browsers):

* ``blocked``: start -> first of DNS, connect or send start;
* ``dns``: -> end of name resolution; ``connect``: -> connection ready (TCP and TLS, without
  DNS even when the library resolves inside its connect); ``ssl``: TLS start -> connection
  ready, a part of ``connect`` and so not counted again in ``time``;
* ``send``: -> request sent; ``wait``: -> status and headers received; ``receive``: -> end.

Phases that did not happen are -1 (``blocked``, ``dns``, ``connect``, ``ssl``) or 0 (``send``,
``wait``, ``receive``, which HAR requires). An exchange that failed before any response is
all ``blocked``: the browsers' way to show a request that never got an answer. One still
waiting for its answer when its recording stopped (a partial entry) ends in the phase it was
in, usually ``wait``, up to the moment its entry is built.

Arithmetic is in whole microseconds, so ``time`` equals the sum of the phases exactly in
microseconds; written as milliseconds with at most three decimals, a float sum of the phases
matches ``time`` to within float rounding (1e-9 ms).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..capture import Exchange, now

__all__ = ["har_timings"]


def har_timings(ex: Exchange) -> Tuple[float, Dict[str, float]]:
    """``(time, timings)`` in milliseconds for ``ex``. An unfinished exchange counts up to now."""
    t0 = ex.t_start
    end = ex.t_end if ex.t_end is not None else now()
    if ex.error is not None and ex.t_response is None:
        total = max(0, round((end - t0) * 1e6)) / 1000
        return total, {"blocked": total, "dns": -1, "connect": -1, "send": 0, "wait": 0,
                       "receive": 0, "ssl": -1}

    # The mark that ends each phase, in order: blocked, dns, connect, send, wait, receive.
    first = ex.t_send_start
    for start in (ex.t_connect_start, ex.t_dns_start):
        if start is not None and (first is None or start < first):
            first = start
    connected = ex.t_connect_end if ex.t_connect_start is not None else None
    marks = [first, ex.t_dns_end if ex.t_dns_start is not None else None, connected,
             ex.t_send_end, ex.t_response, end]
    if ex.t_response is None:
        # No answer yet (in flight when its recording stopped): the time so far belongs to the
        # phase in progress, not to a receive that never began.
        current = _in_progress(ex, first)
        marks[current:] = [end] + [None] * (5 - current)
    lengths = [-1, -1, -1, 0, 0, 0]  # microseconds; what a phase that did not happen gets
    reached = 0  # microseconds since t0 at which the previous phase ended
    for index, mark in enumerate(marks):
        if mark is None:
            continue
        point = round((mark - t0) * 1e6)
        if point <= reached:
            lengths[index] = 0
        else:
            lengths[index] = point - reached
            reached = point
    blocked, dns, connect, send, wait, receive = lengths
    ssl = -1
    if connected is not None and ex.t_tls_start is not None:
        ssl = min(connect, max(0, round((connected - ex.t_tls_start) * 1e6)))
    total = (blocked if blocked > 0 else 0) + (dns if dns > 0 else 0) \
        + (connect if connect > 0 else 0) + send + wait + receive
    return total / 1000, {
        "blocked": -1 if blocked < 0 else blocked / 1000,
        "dns": -1 if dns < 0 else dns / 1000,
        "connect": -1 if connect < 0 else connect / 1000,
        "send": send / 1000, "wait": wait / 1000, "receive": receive / 1000,
        "ssl": -1 if ssl < 0 else ssl / 1000}


def _in_progress(ex: Exchange, first: Optional[float]) -> int:
    """The index in ``har_timings``' marks of the phase an unanswered exchange is in."""
    if first is None:
        return 0  # blocked
    if ex.t_dns_start is not None and ex.t_dns_end is None:
        return 1
    if ex.t_connect_start is not None and ex.t_connect_end is None:
        return 2
    return 3 if ex.t_send_end is None else 4  # sending, else waiting
