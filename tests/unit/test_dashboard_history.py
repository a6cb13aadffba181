"""The dashboard's pure parts: the chart's history (samples, thinning, marks in words) and
failures grouped by reason."""

from __future__ import annotations

from mailpacer.core.events import Event, EventKind
from mailpacer.core.states import MessageState
from mailpacer.service.pages.failures import group_failures, reason_of
from mailpacer.service.pages.history import MAX_SAMPLES, History
from mailpacer.store import MessageRecord

LESSON = (
    'the server refused a 3rd connection with "421 Too many concurrent SMTP connections" '
    "→ 2 connections"
)


def progress(at: float, rate: float, connections: int, sent: int = 0) -> Event:
    """A progress event of campaign 1."""
    data = {"rate": rate, "connections": connections, "sent": sent}
    return Event(EventKind.PROGRESS, 1, at, data)


def test_samples_are_spaced_and_thinned_to_a_bound() -> None:
    """Samples closer than the spacing are dropped; a long run keeps at most MAX_SAMPLES,
    thinned evenly, first and recent ones kept."""
    history = History()
    for i in range(10_000):
        history(progress(i * 0.1, rate=5.0, connections=2, sent=i))
    trace = history.trace(1)
    assert trace is not None
    assert len(trace.samples) <= MAX_SAMPLES
    assert trace.samples[0].at == 0.0 and trace.samples[-1].at > 990
    gaps = {round(b.at - a.at, 1) for a, b in zip(trace.samples, trace.samples[1:], strict=False)}
    assert len(gaps) <= 2  # evenly spaced (the newest at the current spacing)


def test_limits_are_marked_once_with_the_pacers_sentence() -> None:
    """Each new explanation becomes one mark at the moment it was first said; repeats are not
    marked again; a pause and the end of the run are marked too."""
    history = History()
    history(progress(0.0, 1.0, 1))
    for at in (0.5, 1.0):
        history(Event(EventKind.LIMITS, 1, at, {"explanations": [LESSON]}))
    history(Event(EventKind.FINISHED, 1, 2.0, {"state": "paused", "reason": "paused by user"}))
    history(Event(EventKind.STATE, 1, 3.0, {"state": "running", "reason": None}))
    marks = history.trace(1).to_dict()["marks"]  # type: ignore[union-attr]
    assert marks == [
        {"at": 0.5, "kind": "limit", "text": LESSON},
        {"at": 2.0, "kind": "state", "text": "paused: paused by user"},
        {"at": 3.0, "kind": "state", "text": "running"},
    ]
    assert repr(history) == "<History campaigns=[1]>"


def failed(row: int, email: str, code: int, text: str) -> MessageRecord:
    """A failed message with its last reply."""
    return MessageRecord(
        id=row, campaign_id=1, row=row, email=email, variables={"name": f"N{row}"},
        state=MessageState.FAILED, attempts=1, retry_at=None, last_verdict="rejected",
        last_code=code, last_text=text, updated_at=0.0, ever_uncertain=False,
    )  # fmt: skip


def test_failures_group_by_reply_without_the_address() -> None:
    """Replies that differ only by the recipient's address are one reason; the most frequent
    reason comes first with the server's full reply and its recipients."""
    groups = group_failures(
        [
            failed(1, "a@x.org", 550, "5.1.1 <a@x.org>: Recipient address rejected"),
            failed(2, "b@x.org", 550, "5.1.1 <b@x.org>: Recipient address rejected"),
            failed(3, "c@x.org", 554, "5.7.1 Message refused"),
        ]
    )
    assert [(g.count, g.code) for g in groups] == [(2, 550), (1, 554)]
    assert groups[0].reason == "5.1.1 <address>: Recipient address rejected"
    assert groups[0].reply == "550 5.1.1 <a@x.org>: Recipient address rejected"
    assert [r["email"] for r in groups[0].recipients] == ["a@x.org", "b@x.org"]
    assert reason_of(None) == "(no reply text)"
