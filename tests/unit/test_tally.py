"""The run tally behind progress events: counts on top of what the store held, and the rate."""

from __future__ import annotations

from mailpacer.core.states import MessageState
from mailpacer.delivery.tally import RunTally
from mailpacer.store import CampaignStats

M = MessageState


def stats(sent: int = 0, failed: int = 0, total: int = 10) -> CampaignStats:
    """What a store says of a campaign before the run."""
    counts = {state: 0 for state in M}
    counts.update({M.SENT: sent, M.FAILED: failed, M.QUEUED: total - sent - failed})
    return CampaignStats(counts=counts, total=total, attempts=0, throttles=0, uncertain_ever=1)


def test_progress_adds_this_run_to_what_was_there() -> None:
    """Campaign totals are the stored counts plus this run's; the run's own are shown apart."""
    tally = RunTally(stats(sent=3, failed=1))
    for kind in ("sent", "sent", "failed", "throttles", "uncertain"):
        tally.add(kind)
    progress = tally.progress(0.0)
    assert (progress["sent"], progress["failed"], progress["uncertain"]) == (5, 2, 2)
    assert (progress["sent_this_run"], progress["throttles_this_run"]) == (2, 1)
    assert repr(tally) == "<RunTally total=10 failed=1 sent=2 throttles=1 uncertain=1>"


def test_rate_averages_the_last_seconds_only() -> None:
    """The rate counts acceptances of the last five seconds; older ones fall out of it."""
    tally = RunTally(stats())
    assert tally.rate(0.0) == 0.0
    for i in range(11):
        tally.accepted(100.0 + i * 0.1)  # 11 in one second
    assert 10.0 <= tally.rate(101.0) <= 11.0
    assert tally.rate(200.0) == 0.0
