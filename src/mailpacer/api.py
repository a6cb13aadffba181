""":class:`Campaign`: a handle on a stored campaign, the Python twin of ``mailpacer status``,
``pause``, ``cancel`` and ``retry`` (DESIGN §7).

>>> from mailpacer import Campaign
>>> campaign = Campaign.get(42, db="mailpacer.db")  # doctest: +SKIP
>>> campaign  # doctest: +SKIP
<Campaign 42 sent=900 deferred=12 failed=3 queued=85>

A handle is a snapshot: its properties are what the store said when it was read, and
:meth:`Campaign.refresh` reads them again. Every call opens the store and closes it before it
returns, so a handle holds no connection and may be kept as long as you like. Sending (``send``,
``resume``) is the runner's job, not this module's: :meth:`Campaign.retry` only queues messages.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailpacer.core.errors import NotFound, UsageError
from mailpacer.core.limits import Limits
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import CampaignRecord, CampaignStats, MessageRecord, Store, open_store

__all__ = ["Campaign"]

#: the states a ``__repr__`` always shows, then any other state that has messages
_SHOWN = (MessageState.SENT, MessageState.DEFERRED, MessageState.FAILED, MessageState.QUEUED)
_FINISHED = (CampaignState.DONE, CampaignState.CANCELLED)


class Campaign:
    """One stored campaign: its state, counts by message state and its route's learned limits.

    Get one with :meth:`get` or :meth:`list`; ``db`` is a SQLite path, ``sqlite:///path`` or a
    ``postgresql://`` URL, and defaults to ``$MAILPACER_DB`` (else the per-user database) as the
    CLI's ``--db`` does.
    """

    def __init__(
        self, db: str, record: CampaignRecord, stats: CampaignStats, limits: Limits
    ) -> None:
        self._db = db
        self._record = record
        self._stats = stats
        self._limits = limits

    # -- finding campaigns -----------------------------------------------------------------

    @classmethod
    def get(cls, ref: int | str, *, db: str | Path | None = None) -> Campaign:
        """The campaign with id ``ref`` (an int) or key ``ref`` (a str); :class:`NotFound` if
        there is none, or no database at ``db``."""
        url = _db_url(db)
        with _opened(url) as store:
            return cls._read(url, store, store.get_campaign(ref))

    @classmethod
    def list(cls, *, db: str | Path | None = None) -> builtins.list[Campaign]:
        """Every campaign, oldest first (none when there is no database yet)."""
        url = _db_url(db)
        if _missing_file(url):
            return []
        with _opened(url) as store:
            return [cls._read(url, store, record) for record in store.list_campaigns()]

    @classmethod
    def _read(cls, db: str, store: Store, record: CampaignRecord) -> Campaign:
        learned = store.load_route_limits(record.route_key)
        limits = Limits.from_dict(learned) if learned else Limits()
        return cls(db, record, store.stats(record.id), limits)

    # -- the snapshot ----------------------------------------------------------------------

    @property
    def id(self) -> int:
        """The campaign's number (``mailpacer status ID``)."""
        return self._record.id

    @property
    def key(self) -> str:
        """Its stable identity: the same ``send`` again finds the campaign by it."""
        return self._record.key

    @property
    def name(self) -> str:
        """A name for people (the recipients file's stem unless one was given)."""
        return self._record.name

    @property
    def state(self) -> CampaignState:
        """``queued``, ``running``, ``paused``, ``waiting``, ``done`` or ``cancelled``."""
        return self._record.state

    @property
    def reason(self) -> str | None:
        """Why it is paused, waiting or cancelled, in words; None otherwise."""
        return self._record.reason

    @property
    def route_key(self) -> str:
        """The route its messages leave by (the learned limits are kept per route)."""
        return self._record.route_key

    @property
    def counts(self) -> dict[MessageState, int]:
        """Messages by state, every state present (``counts["sent"]`` works too)."""
        return dict(self._stats.counts)

    @property
    def total(self) -> int:
        """How many messages the campaign has."""
        return self._stats.total

    @property
    def limits(self) -> Limits:
        """What mailpacer has learned of its route's limits (``Limits()`` when nothing yet)."""
        return self._limits

    def refresh(self) -> Campaign:
        """Read the campaign again from the store; returns ``self``."""
        with _opened(self._db) as store:
            fresh = self._read(self._db, store, store.get_campaign(self.id))
        self._record, self._stats, self._limits = fresh._record, fresh._stats, fresh._limits
        return self

    def messages(
        self, state: MessageState | str | None = None, limit: int = 100
    ) -> builtins.list[MessageRecord]:
        """Up to ``limit`` of its messages in row order, only those in ``state`` if given; each
        carries its last reply (``last_code``, ``last_text``)."""
        wanted = MessageState(state) if state is not None else None
        with _opened(self._db) as store:
            return store.messages(self.id, state=wanted, limit=limit)

    # -- actions ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Pause it: a running engine finishes its in-flight messages and stops. Pausing a
        paused campaign does nothing; a done or cancelled one is a :class:`UsageError`."""
        with _opened(self._db) as store:
            record = store.get_campaign(self.id)
            if record.state is not CampaignState.PAUSED:
                _refuse_finished(record, "pause")
                store.set_campaign_state(record.id, CampaignState.PAUSED, "paused by user")
        self.refresh()

    def cancel(self) -> int:
        """Cancel it: nothing new starts, queued and deferred messages become ``cancelled``.
        Returns how many were cancelled (0 when it already was)."""
        count = 0
        with _opened(self._db) as store:
            record = store.get_campaign(self.id)
            if record.state is not CampaignState.CANCELLED:
                _refuse_finished(record, "cancel")
                store.set_campaign_state(record.id, CampaignState.CANCELLED, "cancelled by user")
                count = store.cancel_pending(record.id)
        self.refresh()
        return count

    def retry(self, *, failed: bool = True, uncertain: bool = False) -> int:
        """Queue its failed and/or uncertain messages again (attempt counters reset, history
        kept) and reopen it if it was done or cancelled; returns how many were queued.

        Nothing is sent here: ``mailpacer resume ID`` (or the same ``send`` again) sends them.
        """
        states = {
            s
            for s, wanted in ((MessageState.FAILED, failed), (MessageState.UNCERTAIN, uncertain))
            if wanted
        }
        if not states:
            raise UsageError("nothing to retry: ask for failed and/or uncertain messages")
        with _opened(self._db) as store:
            count = store.retry(self.id, states)
            record = store.get_campaign(self.id)
            if count and record.state in _FINISHED:
                store.set_campaign_state(record.id, CampaignState.QUEUED, None)
        self.refresh()
        return count

    def __repr__(self) -> str:
        counts = self._stats.counts
        shown = [*_SHOWN, *(s for s in MessageState if s not in _SHOWN and counts.get(s))]
        return f"<Campaign {self.id} " + " ".join(f"{s}={counts.get(s, 0)}" for s in shown) + ">"


def _db_url(db: str | Path | None) -> str:
    if db is not None:
        return str(db)
    from mailpacer.delivery.runner import default_db  # the CLI's default, read at call time

    return default_db()


def _missing_file(db: str) -> bool:
    """``db`` names a SQLite file (a path or ``sqlite:///path``) that does not exist."""
    if "://" not in db:
        return not Path(db).expanduser().exists()
    if db.lower().startswith("sqlite:///"):
        return not Path("/" + db[len("sqlite:///") :].lstrip("/")).exists()
    return False


@contextmanager
def _opened(db: str) -> Iterator[Store]:
    """The store at ``db``, closed afterwards; a missing SQLite file is :class:`NotFound` (a
    mistyped path must not become a new empty database)."""
    if _missing_file(db):
        raise NotFound(f"no database at {db} (`mailpacer send` creates it)")
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def _refuse_finished(record: CampaignRecord, action: str) -> None:
    if record.state in _FINISHED:
        raise UsageError(
            f"campaign {record.id} is {record.state.value}: nothing to {action}"
            " (Campaign.retry() queues failed or uncertain messages again)"
        )
