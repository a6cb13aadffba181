"""One campaign spread over a group of routes: real sandboxes on loopback, a real SQLite file.

Each route learns its own limits and takes messages at the pace it can; a route that fails
hands its messages to the others; nothing is lost or sent twice.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import campaign, message_id, run_engine

from mailpacer.config.campaign import RouteEntry
from mailpacer.core.limits import Limits
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route, TlsMode
from mailpacer.delivery.report import Report
from mailpacer.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in a temporary file."""
    s = open_store(tmp_path / "mailpacer.db")
    yield s
    s.close()


#: the latency of every sandbox here: t = 3 * 5 ms + 30 ms = 45 ms a message per connection
LATENCY = {"command_latency": 0.005, "data_latency": 0.03, "greeting_latency": 0.005}


def route_of(sb: Any) -> Route:
    """The loopback route to a sandbox."""
    return Route(host=sb.host, port=sb.port, timeout=10.0)


def run_group(store: Store, count: int, first: Route, *more: Route, **options: Any) -> Report:
    """A campaign of ``count`` recipients sent through ``first`` and ``more`` as one group."""
    record = campaign(store, count)
    group = tuple(RouteEntry(route) for route in more)
    return run_engine(store, record, first, more_routes=group, **options)


def assert_each_sent_once(sandboxes: list[Any], count: int) -> collections.Counter[str]:
    """Every recipient arrived at exactly one of the sandboxes, once; returns arrivals by
    sandbox port."""
    arrivals = collections.Counter[str]()
    where: dict[str, int] = {}
    for sb in sandboxes:
        for m in sb.messages:
            arrivals[m.message_id] += 1
            where[m.message_id] = sb.port
    expected = {message_id(f"worker{i}@example.com") for i in range(count)}
    assert set(arrivals) == expected, f"missing: {len(expected - set(arrivals))}"
    assert max(arrivals.values()) == 1, [mid for mid, n in arrivals.items() if n > 1][:5]
    return collections.Counter(str(port) for port in where.values())


@pytest.mark.slow
def test_two_routes_1_to_3_share_one_campaign_in_proportion(store: Store, sandbox: Any) -> None:
    """Capacities 1:3 (1 and 3 connections at the same latency), told nothing: every message
    is sent once, through one of them; the faster route carries about three quarters; each
    route learns its own connection limit, stored under its own key."""
    slow = sandbox("strict", max_connections=1, **LATENCY)
    fast = sandbox("strict", max_connections=3, **LATENCY)
    assert fast.profile.capacity == pytest.approx(3 * slow.profile.capacity)
    report = run_group(store, 600, route_of(slow), route_of(fast))

    assert report.sent == 600 and report.state == "done", report
    assert report.exit_code == 0 and report.route_error is None
    by_port = assert_each_sent_once([slow, fast], 600)
    assert [r.route for r in report.routes] == [route_of(slow).key, route_of(fast).key]
    assert [r.sent for r in report.routes] == [by_port[str(slow.port)], by_port[str(fast.port)]]
    assert all(r.error is None for r in report.routes)
    share = report.routes[1].sent / report.sent
    assert 0.62 <= share <= 0.88, f"the 3x route carried {share:.0%} (ideal 75%)"
    for sb, route in ((slow, report.routes[0]), (fast, report.routes[1])):
        assert sb.counters.peak_concurrent <= sb.profile.max_connections
        stored = store.load_route_limits(route.route)
        assert stored is not None and route.limits == Limits.from_dict(stored).to_dict()
        assert stored["connections"] is not None
        assert stored["connections"] <= sb.profile.max_connections
    assert store.sent_by_route(report.campaign) == {r.route: r.sent for r in report.routes}


def test_an_unreachable_route_hands_its_messages_to_the_other(
    store: Store, sandbox: Any, unused_port: int
) -> None:
    """One route of two never answers: the campaign is done through the other (exit 0), and
    the report says which route failed and why."""
    sb = sandbox("strict", **LATENCY)  # 2 connections: ~4 s for 200, the dead route fails first
    dead = Route(host="127.0.0.1", port=unused_port, timeout=2.0)
    report = run_group(store, 200, dead, route_of(sb), max_connect_failures=2)

    assert report.sent == 200 and report.state == "done", report
    assert report.route_error is None and report.exit_code == 0
    assert_each_sent_once([sb], 200)
    failed, working = report.routes
    assert failed.route == dead.key and failed.sent == 0
    assert failed.error is not None and "cannot connect" in failed.error
    assert working.sent == 200 and working.error is None


def test_a_route_refusing_our_password_leaves_the_group(store: Store, sandbox: Any) -> None:
    """AUTH refused on one route (535): its messages go to the other; nothing fails."""
    auth = sandbox("auth-tls")
    plain = sandbox("unlimited", **LATENCY)
    user, _ = auth.credentials
    refused = Route(
        host=auth.host,
        port=auth.port,
        tls=TlsMode.STARTTLS,
        username=user,
        password="wrong",
        cafile=str(auth.cafile),
        timeout=5.0,
    )
    report = run_group(store, 30, refused, route_of(plain))

    assert report.sent == 30 and report.failed == 0 and report.state == "done", report
    assert report.routes[0].error is not None and "535" in report.routes[0].error
    assert report.routes[1].sent == 30
    assert_each_sent_once([plain], 30)


def test_every_route_failing_pauses_the_campaign(store: Store, unused_port: int) -> None:
    """No route of the group answers: paused with each route's reason, exit code 4, nothing
    failed or lost."""
    one = Route(host="127.0.0.1", port=unused_port, timeout=2.0)
    other = Route(host="localhost", port=unused_port, timeout=2.0)
    report = run_group(store, 5, one, other, max_connect_failures=2)

    assert report.state == "paused" and report.exit_code == 4
    assert report.route_error is not None
    assert report.route_error.startswith("every route of the group failed")
    assert one.key in report.route_error and other.key in report.route_error
    assert report.failed == 0 and report.queued == 5
    assert all(r.error for r in report.routes)


def test_a_message_deferred_on_one_route_may_leave_by_another(store: Store, sandbox: Any) -> None:
    """One route greylists every new recipient for a second: those messages are deferred and
    retried by whichever route takes them then; some leave by the other route."""
    grey = sandbox("unlimited", greylist_seconds=1.0, **LATENCY)
    plain = sandbox("unlimited", **LATENCY)
    policy = RetryPolicy(greylist_min_seconds=0.5, base_seconds=0.5, cap_seconds=2.0)
    report = run_group(store, 60, route_of(grey), route_of(plain), retry=policy)

    assert report.sent == 60 and report.state == "done", report
    assert_each_sent_once([grey, plain], 60)
    deferred_then_moved = 0
    for m in store.messages(report.campaign, limit=100):
        routes = [(a.verdict, a.route) for a in store.attempts(m.id)]
        if ("greylist", route_of(grey).key) in routes and routes[-1] == (
            "accepted",
            route_of(plain).key,
        ):
            deferred_then_moved += 1
    assert deferred_then_moved >= 1
