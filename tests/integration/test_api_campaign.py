""":class:`mailpacer.Campaign` on a real SQLite file: one campaign sent for real through
``mailpacer.send`` to a sandbox, one created in the store and not yet started."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import mailpacer
from mailpacer import Campaign, Limits, NotFound, Report, Sandbox, UsageError
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import NewMessage, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker-qr"
ROWS = 17  #: row 17 of workers.csv is a ``nouser…`` address: 16 sent, 1 failed
PENDING = 5  #: messages of the campaign that was never started


@pytest.fixture(scope="module")
def sent_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    """A database with campaign 1 sent through the real engine (done: 16 sent, 1 failed) and
    campaign 2 created with 5 queued messages; each test gets a copy of it (``db``)."""
    root = tmp_path_factory.mktemp("api")
    campaign = root / "worker-qr"
    shutil.copytree(EXAMPLE, campaign)
    csv = campaign / "workers.csv"
    lines = csv.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    csv.write_text("".join(lines[: ROWS + 1]), encoding="utf-8")
    db = root / "template.db"
    with Sandbox("strict") as sandbox:  # 2 connections: the run learns at least that
        report = mailpacer.send(
            csv,
            template=campaign / "templates",
            smtp=f"smtp://{sandbox.host}:{sandbox.port}",
            sender="HR <hr@example.com>",
            db=str(db),
        )
    store = open_store(db)
    try:
        created, _ = store.get_or_create_campaign(
            "not-started", name="later", route_key="smtp://127.0.0.1:1", options={}
        )
        rows = (NewMessage(i, f"later{i}@example.com", {}) for i in range(1, PENDING + 1))
        store.add_messages(created.id, rows)
    finally:
        store.close()
    return db, report


@pytest.fixture
def db(sent_db: tuple[Path, Report], tmp_path: Path) -> Path:
    """This test's own copy of the module's database."""
    source, _ = sent_db
    copy = tmp_path / "mailpacer.db"
    shutil.copy(source, copy)
    for suffix in ("-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
    return copy


def test_get_shows_state_counts_and_repr(db: Path, sent_db: tuple[Path, Report]) -> None:
    """A sent campaign reads back as the report said, by id and by key alike."""
    _, report = sent_db
    campaign = Campaign.get(report.campaign, db=db)

    assert campaign.id == report.campaign
    assert campaign.state is CampaignState.DONE
    assert campaign.reason is None
    assert campaign.name == "workers"
    assert campaign.total == ROWS
    assert campaign.counts[MessageState.SENT] == ROWS - 1
    assert campaign.counts["failed"] == 1
    assert repr(campaign) == f"<Campaign {campaign.id} sent=16 deferred=0 failed=1 queued=0>"
    assert repr(Campaign.get(report.key, db=str(db))) == repr(campaign)


def test_limits_are_the_routes_learned_limits(db: Path, sent_db: tuple[Path, Report]) -> None:
    """``limits`` is what the run learned of its route; a route with none learned says so."""
    _, report = sent_db
    limits = Campaign.get(report.campaign, db=db).limits
    assert limits != Limits()
    assert limits.to_dict() == report.limits
    assert limits.describe() == report.limits_text
    assert Campaign.get("not-started", db=db).limits == Limits()


def test_list_is_every_campaign_oldest_first(db: Path, tmp_path: Path) -> None:
    """``list`` finds both campaigns; no database yet means no campaigns (and no file made)."""
    assert [(c.id, c.name) for c in Campaign.list(db=db)] == [(1, "workers"), (2, "later")]
    missing = tmp_path / "none.db"
    assert Campaign.list(db=missing) == []
    assert not missing.exists()


def test_db_defaults_to_the_environment(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``db`` the handle uses ``$MAILPACER_DB``, as the CLI's ``--db`` does."""
    monkeypatch.setenv("MAILPACER_DB", str(db))
    assert [c.id for c in Campaign.list()] == [1, 2]
    assert Campaign.get(2).name == "later"


def test_unknown_campaign_or_database_is_not_found(db: Path, tmp_path: Path) -> None:
    """An unknown id or key, or a mistyped database path, raise NotFound; no file is made."""
    with pytest.raises(NotFound):
        Campaign.get(999, db=db)
    with pytest.raises(NotFound):
        Campaign.get("no-such-key", db=db)
    missing = tmp_path / "typo.db"
    with pytest.raises(NotFound, match="no database"):
        Campaign.get(1, db=missing)
    assert not missing.exists()


def test_pause_then_cancel_a_campaign_not_yet_sent(db: Path) -> None:
    """Pause is recorded with its reason (twice is harmless); cancel cancels what is pending."""
    campaign = Campaign.get("not-started", db=db)
    assert campaign.state is CampaignState.QUEUED
    assert repr(campaign) == f"<Campaign {campaign.id} sent=0 deferred=0 failed=0 queued=5>"

    campaign.pause()
    campaign.pause()
    assert (campaign.state, campaign.reason) == (CampaignState.PAUSED, "paused by user")

    assert campaign.cancel() == PENDING
    assert campaign.state is CampaignState.CANCELLED
    assert (
        repr(campaign)
        == f"<Campaign {campaign.id} sent=0 deferred=0 failed=0 queued=0 cancelled=5>"
    )
    assert campaign.cancel() == 0
    with pytest.raises(UsageError, match="cancelled: nothing to pause"):
        campaign.pause()


def test_a_finished_campaign_cannot_be_paused_or_cancelled(db: Path) -> None:
    """Done means nothing to stop: UsageError, and the stored state is untouched."""
    campaign = Campaign.get(1, db=db)
    with pytest.raises(UsageError, match="done: nothing to pause"):
        campaign.pause()
    with pytest.raises(UsageError, match="done: nothing to cancel"):
        campaign.cancel()
    assert Campaign.get(1, db=db).state is CampaignState.DONE


def test_retry_queues_failed_messages_and_reopens(db: Path) -> None:
    """``retry()`` queues the failed message again and reopens the done campaign; asking for
    uncertain ones only finds none and leaves it as it is; asking for nothing is refused."""
    campaign = Campaign.get(1, db=db)
    assert campaign.retry(failed=False, uncertain=True) == 0
    assert campaign.state is CampaignState.DONE
    with pytest.raises(UsageError, match="nothing to retry"):
        campaign.retry(failed=False)

    assert campaign.retry() == 1
    assert campaign.state is CampaignState.QUEUED
    assert (campaign.counts["queued"], campaign.counts["failed"]) == (1, 0)


def test_messages_carry_the_servers_reply(db: Path) -> None:
    """``messages(state=...)`` lists those messages in row order with their last reply."""
    campaign = Campaign.get(1, db=db)
    (failed,) = campaign.messages("failed")
    assert failed.email.startswith("nouser.")
    assert failed.last_code == 550
    sent = campaign.messages(MessageState.SENT, limit=3)
    assert [m.row for m in sent] == [1, 2, 3]
    assert len(campaign.messages()) == ROWS


def test_a_handle_is_a_snapshot_until_refreshed(db: Path) -> None:
    """A change made through another handle shows in this one after ``refresh()``."""
    first = Campaign.get(2, db=db)
    Campaign.get(2, db=db).pause()
    assert first.state is CampaignState.QUEUED
    assert first.refresh() is first
    assert first.state is CampaignState.PAUSED


def test_the_api_names_are_importable_from_the_package() -> None:
    """Every name in ``mailpacer.__all__`` resolves; unknown names are AttributeErrors."""
    for name in mailpacer.__all__:
        assert getattr(mailpacer, name) is not None
    with pytest.raises(AttributeError):
        _: Callable[[], None] = mailpacer.no_such_thing  # type: ignore[attr-defined]
