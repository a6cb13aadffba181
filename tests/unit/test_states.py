"""The transition tables of messages and campaigns (DESIGN §3): the one place that decides."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.core.errors import InvalidTransition, StoreError
from mailpacer.core.states import (
    CAMPAIGN_TRANSITIONS,
    MESSAGE_TRANSITIONS,
    CampaignState,
    MessageState,
    check_campaign_transition,
    check_message_transition,
)

M = MessageState
C = CampaignState
S = TypeVar("S")

#: the edges drawn in DESIGN §3, plus the two the store relies on (due deferred claimed directly,
#: retry of cancelled messages)
DESIGN_EDGES = {
    (M.QUEUED, M.SENDING),
    (M.SENDING, M.SENT),
    (M.SENDING, M.QUEUED),
    (M.SENDING, M.DEFERRED),
    (M.SENDING, M.FAILED),
    (M.SENDING, M.UNCERTAIN),
    (M.DEFERRED, M.QUEUED),
    (M.DEFERRED, M.SENDING),
    (M.UNCERTAIN, M.QUEUED),
    (M.QUEUED, M.CANCELLED),
    (M.DEFERRED, M.CANCELLED),
    (M.FAILED, M.QUEUED),
    (M.CANCELLED, M.QUEUED),
}


def reachable(table: Mapping[S, frozenset[S]], start: S) -> set[S]:
    """Every state reachable from ``start`` (``start`` included)."""
    seen, todo = {start}, [start]
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize(("old", "new"), list(itertools.product(M, M)))
def test_message_pairs_outside_the_table_raise(old: MessageState, new: MessageState) -> None:
    """Every one of the 49 pairs: allowed exactly when the table lists it; staying put never is."""
    if new in MESSAGE_TRANSITIONS[old]:
        assert old is not new
        check_message_transition(old, new)
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_message_transition(old, new)
        assert (raised.value.kind, raised.value.old, raised.value.new) == ("message", old, new)


@given(st.sampled_from(C), st.sampled_from(C))
def test_campaign_pairs_outside_the_table_raise(old: CampaignState, new: CampaignState) -> None:
    """Any campaign pair: allowed exactly when listed; the error is a StoreError naming both."""
    if new in CAMPAIGN_TRANSITIONS[old]:
        check_campaign_transition(old, new)
    else:
        with pytest.raises(StoreError, match=f"'{old.value}' to '{new.value}'"):
            check_campaign_transition(old, new)


def test_the_message_table_is_exactly_the_design() -> None:
    """No edge missing, none extra, every state has a row."""
    edges = {(old, new) for old, targets in MESSAGE_TRANSITIONS.items() for new in targets}
    assert edges == DESIGN_EDGES
    assert set(MESSAGE_TRANSITIONS) == set(M) and set(CAMPAIGN_TRANSITIONS) == set(C)


def test_only_sent_is_final() -> None:
    """Every message state is reachable from queued, and every one but sent can be queued again."""
    assert reachable(MESSAGE_TRANSITIONS, M.QUEUED) == set(M)
    for state in M:
        assert (M.QUEUED in reachable(MESSAGE_TRANSITIONS, state)) is (state is not M.SENT)


def test_every_campaign_can_run_again() -> None:
    """A campaign can reach every state from queued, and can always be run again (retry)."""
    assert reachable(CAMPAIGN_TRANSITIONS, C.QUEUED) == set(C)
    assert all(C.RUNNING in reachable(CAMPAIGN_TRANSITIONS, state) for state in C)


@given(st.lists(st.sampled_from(M), max_size=30))
def test_a_walk_is_accepted_exactly_while_it_follows_the_table(path: list[MessageState]) -> None:
    """Checking a sequence of changes stops at the first one the table does not list."""
    state = M.QUEUED
    for target in path:
        allowed = target in MESSAGE_TRANSITIONS[state]
        try:
            check_message_transition(state, target)
        except InvalidTransition:
            assert not allowed
            break
        assert allowed
        state = target
