"""The shared engine on its own: windows, filters, connection parsing, retries, pacing, de-duplication.

``AcmeHook`` below is a whole vendor in fifteen lines, which is the point of the base class.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

import pendulum
import pytest

from airflow_provider_conversations.engine.paginators import BodyCursorPaginator, Item
from airflow_provider_conversations.engine.walk import Dedup
from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    RetriesExhaustedError,
    VendorAPIError,
)
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks import validate_filters
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.transport.throttle import RateLimitHeaders, Throttle, parse_retry_after
from airflow_provider_conversations.windows import Window, parse_iso
from tests.conftest import FakeClock

URL = "https://acme.test/v1/conversations"


class AcmeHook(ConversationsHook):
    conn_type = "acme"
    hook_name = "Acme"
    default_base_url = "https://acme.test"
    time_keys = {"created": TimeKey("created", "created_at", parse_iso)}
    max_page_size = 10
    filter_set = FilterSet("Acme", (
        Filter("team"),
        Filter("tags", "enum", choices=("a", "b"), repeatable=True),
        Filter("min_turns", "int", minimum=0, maximum=100),
        Filter("max_turns", "int", minimum=0, maximum=100),
        Filter("meta", "json"),
        Filter("urgent", "bool"),
        Filter("old_urgent", "bool", alias_of="urgent"),
        Filter("pair", pattern=r"[a-z]+:[a-z]+", pattern_hint="like 'key:value'"),
    ), ordered=(("min_turns", "max_turns"),), reserved={"limit": "the hook pages"})

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.secret}"}

    def list_path(self, settings: ConnectionSettings) -> str:
        return "v1/conversations"

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        return Paging(BodyCursorPaginator("limit", page_size, "cursor", cursor="next"))

    def page_items(self, body: Any) -> list[Item]:
        return list(body["data"])


@pytest.fixture
def acme(set_connection):
    set_connection("acme_default", {"conn_type": "acme", "password": "tok-123456"})


# ---------------------------------------------------------------------------------------------- windows


def test_window_accepts_pendulum_and_stdlib_and_other_zones():
    w = Window.of(pendulum.datetime(2026, 11, 20, 1, tz="Europe/Paris"), datetime(2026, 11, 20, 1, tzinfo=UTC))
    assert w.start == datetime(2026, 11, 20, 0, tzinfo=UTC)
    assert w.end == datetime(2026, 11, 20, 1, tzinfo=UTC)
    assert w.start.tzinfo is UTC


def test_window_is_half_open():
    w = Window.of(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert w.start in w
    assert w.end not in w
    assert w.end - timedelta(microseconds=1) in w


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC), "start=2026-01-01T00:00:00 is a naive datetime"),
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2), "end=2026-01-02T00:00:00 is a naive datetime"),
        (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "must be earlier than end"),
        ("yesterday", datetime(2026, 1, 1, tzinfo=UTC), "start='yesterday' is not an ISO 8601 timestamp"),
        (12, datetime(2026, 1, 1, tzinfo=UTC), "start must be a timezone-aware datetime"),
    ],
)
def test_window_errors(start, end, message):
    with pytest.raises(ConfigurationError, match=message):
        Window.of(start, end)


def test_window_split_is_contiguous_and_exact():
    w = Window.of(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
    parts = w.split(7)
    assert len(parts) == 7
    assert parts[0].start == w.start
    assert parts[-1].end == w.end
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))


# ---------------------------------------------------------------------------------------------- filters


def test_filters_normalise_values():
    out = AcmeHook.filter_set.validate({"team": "x", "tags": "a", "min_turns": "3", "meta": '{"b":1, "a":2}',
                                        "old_urgent": "true", "pair": "k:v", "max_turns": None})
    assert out == {"team": "x", "tags": ["a"], "min_turns": 3, "meta": '{"a":2,"b":1}', "urgent": True,
                   "pair": "k:v"}
    assert AcmeHook.filter_set.to_params(out) == {"team": "x", "tags": ["a"], "min_turns": "3",
                                                  "meta": '{"a":2,"b":1}', "urgent": "true", "pair": "k:v"}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"tags": ["a", "c"]}, "Acme filter 'tags' got 'c'; allowed: one of 'a', 'b', or a list of such values"),
        ({"min_turns": 101}, "Acme filter 'min_turns' got 101 (out of range); allowed: an integer >= 0 and <= 100"),
        ({"min_turns": True}, "Acme filter 'min_turns' got True; allowed: an integer >= 0 and <= 100"),
        ({"min_turns": 5, "max_turns": 2}, "'min_turns'=5 is greater than 'max_turns'=2"),
        ({"meta": "[1]"}, "Acme filter 'meta' got '[1]'; allowed: a JSON object"),
        ({"meta": "{"}, "Acme filter 'meta' got '{' (not valid JSON)"),
        ({"urgent": True, "old_urgent": False}, "'old_urgent' is a deprecated alias of 'urgent'; pass only one"),
        ({"pair": "nope"}, "Acme filter 'pair' got 'nope'; allowed: a string like 'key:value'"),
        ({"team": ["x", "y"]}, "(a list, but this filter takes a single value)"),
        ({"limit": 5}, "Acme filter 'limit' cannot be passed in filters: the hook pages"),
        (["team"], "filters must be a dict of Acme filter names to values, got list"),
    ],
)
def test_filter_errors_name_the_filter_value_and_what_is_allowed(filters, message):
    with pytest.raises(InvalidFilterError) as err:
        AcmeHook.filter_set.validate(filters)
    assert message in str(err.value)


def test_validate_filters_by_connection_type_sends_nothing(requests_mock):
    assert validate_filters("polyai", {"variant_id": "v"}) == {"variant_id": "v"}
    with pytest.raises(ConfigurationError, match="connection type 'http' is not a conversations vendor"):
        validate_filters("http", {})
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------------------------- connections


@pytest.mark.parametrize(
    ("conn", "base_url"),
    [
        ({"host": "http://127.0.0.1:8931"}, "http://127.0.0.1:8931"),
        ({"host": "https://api.eu.residency.elevenlabs.io/"}, "https://api.eu.residency.elevenlabs.io"),
        ({"host": "proxy.internal", "schema": "http", "port": 8080}, "http://proxy.internal:8080"),
        ({"host": "proxy.internal"}, "https://proxy.internal"),
        ({"host": "https://gw.internal/acme"}, "https://gw.internal/acme"),
        ({}, "https://acme.test"),
    ],
)
def test_host_overrides_the_default_base_url(set_connection, conn, base_url):
    set_connection("acme_x", {"conn_type": "acme", "password": "tok-123456", **conn})
    assert AcmeHook("acme_x").base_url == base_url


@pytest.mark.parametrize("host", ["ftp://files.example", "http://", "https://exa mple.com", "http://h:port"])
def test_malformed_host_is_refused(set_connection, host):
    set_connection("acme_x", {"conn_type": "acme", "password": "tok-123456", "host": host})
    with pytest.raises(ConfigurationError, match=r"connection 'acme_x' has a malformed host"):
        AcmeHook("acme_x").base_url  # noqa: B018


def test_missing_key_and_wrong_type(set_connection):
    set_connection("acme_x", {"conn_type": "acme"})
    with pytest.raises(ConfigurationError, match="connection 'acme_x' has no API key: put the Acme API key in"):
        AcmeHook("acme_x").base_url  # noqa: B018
    set_connection("acme_y", {"conn_type": "http", "password": "tok-123456"})
    with pytest.raises(ConfigurationError, match="connection 'acme_y' has type 'http', but AcmeHook needs"):
        AcmeHook("acme_y").base_url  # noqa: B018


def test_tls_verification_is_on_unless_switched_off_with_a_warning(set_connection, logs, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    set_connection("acme_x", {"conn_type": "acme", "password": "tok-123456"})
    assert AcmeHook("acme_x").get_conn().verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    assert AcmeHook("acme_x").get_conn().verify == "/etc/corp-ca.pem"  # the environment's CA bundle still applies
    assert "TLS" not in logs()
    set_connection("acme_y", {"conn_type": "acme", "password": "tok-123456", "extra": {"verify_ssl": "false"}})
    assert AcmeHook("acme_y").get_conn().verify is False
    assert "TLS certificate verification is OFF for connection 'acme_y'" in logs()


def test_page_size_is_validated_at_construction():
    with pytest.raises(ConfigurationError, match="page_size=11 is not allowed for Acme: expected an integer from 1"):
        AcmeHook(page_size=11)
    with pytest.raises(ConfigurationError, match="page_size=0"):
        AcmeHook(page_size=0)


# ---------------------------------------------------------------------------------------------- retries


def test_retry_after_forms():
    now = 1_700_000_000.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_http_date_is_honoured_and_capped(acme, requests_mock, fake_clock):
    far = formatdate(datetime.now(UTC).timestamp() + 3600, usegmt=True)
    requests_mock.get(URL, [
        {"status_code": 429, "headers": {"Retry-After": far}},
        {"json": {"data": [], "next": None}},
    ])
    hook = AcmeHook(retry_after_cap=20)
    clock = fake_clock(hook)
    list(hook.iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert clock.sleeps == [20.0]


def test_exponential_backoff_with_jitter_without_retry_after(acme, requests_mock, fake_clock, logs):
    requests_mock.get(URL, [{"status_code": 502}] * 4 + [{"json": {"data": [], "next": None}}])
    hook = AcmeHook(backoff=1.0, backoff_max=5.0)
    clock = fake_clock(hook)
    list(hook.iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert len(clock.sleeps) == 4
    for wait, ceiling in zip(clock.sleeps, [1, 2, 4, 5], strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert "Acme: attempt 1/6 failed (HTTP 502" in logs()


def test_total_retry_time_is_bounded(acme, requests_mock):
    requests_mock.get(URL, status_code=503)
    hook = AcmeHook(max_attempts=1000, max_retry_seconds=0.3, backoff=0.05, backoff_max=0.05)
    with pytest.raises(RetriesExhaustedError, match=r"limits: 1000 attempts, 0.3 s"):
        list(hook.iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert 3 <= requests_mock.call_count <= 12


def test_connection_errors_and_timeouts_are_retried(acme, requests_mock, fake_clock):
    import requests

    requests_mock.get(URL, [
        {"exc": requests.ConnectionError("boom")},
        {"exc": requests.ReadTimeout("slow")},
        {"exc": requests.exceptions.ChunkedEncodingError("cut")},
        {"json": {"data": [{"id": "1", "created_at": "2026-01-01T00:00:00Z"}], "next": None}},
    ])
    hook = AcmeHook()
    fake_clock(hook)
    got = list(hook.iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert [c["id"] for c in got] == ["1"]
    assert hook.stats.retries == 3


def test_secret_never_in_errors_or_logs(set_connection, requests_mock, logs):
    secret = "acme-SECRET-0123456789"
    set_connection("acme_default", {"conn_type": "acme", "password": secret})
    requests_mock.get(URL, status_code=500, text="upstream failure")
    hook = AcmeHook(max_attempts=2, backoff=0.001)
    with pytest.raises(RetriesExhaustedError) as err:
        list(hook.iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert secret not in str(err.value)
    text = logs()
    assert "attempt 1/2 failed (HTTP 500" in text
    assert secret not in text
    assert secret not in requests_mock.request_history[0].url


# ---------------------------------------------------------------------------------------------- throttle


def test_throttle_paces_when_the_limit_runs_low():
    clock = FakeClock()
    t = Throttle(RateLimitHeaders(), clock=clock.monotonic, sleep=clock.sleep)
    t.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "50", "RateLimit-Reset": "30"})
    t.wait_turn()
    t.wait_turn()
    assert clock.sleeps == []  # plenty left: full speed
    t.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "10", "RateLimit-Reset": "30"})
    for _ in range(3):
        t.wait_turn()
    assert clock.sleeps == [3.0, 3.0, 3.0]  # 30 s / 10 requests left: the very next request is spaced already
    t.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "12"})
    t.wait_turn()
    assert clock.sleeps[-1] == 12.0  # used up: wait for the reset
    t.wait_turn()
    assert clock.sleeps[-1] == 12.0  # and not a stale pacing interval on top of it
    assert len(clock.sleeps) == 4


def test_throttle_pause_blocks_every_caller():
    clock = FakeClock()
    t = Throttle(None, clock=clock.monotonic, sleep=clock.sleep)
    t.pause(5, "429")
    t.wait_turn()
    t.wait_turn()
    assert clock.sleeps == [5.0]


# ---------------------------------------------------------------------------------------------- dedup


def ts(minute: int) -> datetime:
    return datetime(2026, 1, 1, 0, minute, tzinfo=UTC)


def test_dedup_ordered_keeps_only_the_frontier():
    d = Dedup("asc", repeats=True)
    assert [d.first_time(i, ts(m)) for i, m in [("a", 1), ("b", 1), ("a", 1), ("c", 2), ("b", 1)]] == [
        True, True, False, True, False]
    assert d._ids == {"c"}  # memory: only the ids at the newest instant


def test_dedup_descending():
    d = Dedup("desc", repeats=True)
    assert [d.first_time(i, ts(m)) for i, m in [("a", 5), ("b", 4), ("a", 5), ("b", 4), ("c", 4)]] == [
        True, True, False, False, True]


def test_dedup_falls_back_to_every_id_when_a_cursor_walk_breaks_its_order():
    seen: list[str] = []
    d = Dedup("asc", repeats=False, on_disorder=lambda i, t, f: seen.append(i))
    assert d.first_time("a", ts(5))
    assert d.first_time("b", ts(3))  # out of order but new: kept, never lost
    assert seen == ["b"]
    assert not d.first_time("b", ts(3))
    assert not d.first_time("a", ts(5))


def test_dedup_unordered_remembers_everything():
    d = Dedup(None)
    assert d.first_time("a", ts(1))
    assert d.first_time("b", ts(0))
    assert not d.first_time("a", ts(2))


def test_extra_that_is_not_json_is_a_configuration_error(monkeypatch):
    from airflow.sdk import Connection

    conn = Connection(conn_id="acme_x", conn_type="acme", password="tok-123456", extra="{not json")
    with pytest.raises(ConfigurationError, match="connection 'acme_x' has an Extra that is not valid JSON"):
        AcmeHook("acme_x").settings_from_connection(conn)


@pytest.mark.parametrize("host", ["https://user:hunter2-secret@api.example.com", "https://api.example.com/?debug=1",
                                  "https://api.example.com/#frag"])
def test_host_with_credentials_query_or_fragment_is_refused(set_connection, host):
    set_connection("acme_x", {"conn_type": "acme", "password": "tok-123456", "host": host})
    with pytest.raises(ConfigurationError, match="connection 'acme_x' has ") as err:
        AcmeHook("acme_x").base_url  # noqa: B018
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("key", [" tok-123456", "tok-123456\n", "tok\r\n-123456"])
def test_key_with_whitespace_or_control_characters_is_refused_without_showing_it(set_connection, key):
    set_connection("acme_x", {"conn_type": "acme", "password": key})
    with pytest.raises(ConfigurationError, match="has an API key with leading or trailing whitespace") as err:
        AcmeHook("acme_x").base_url  # noqa: B018
    assert "123456" not in str(err.value)


def test_missing_connection_names_it_and_how_to_create_it(requests_mock):
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_provider_conversations.exceptions import ConnectionNotFoundError

    with pytest.raises(ConnectionNotFoundError, match="connection 'nowhere' is not defined: create it") as err:
        AcmeHook("nowhere").iter_pages(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert isinstance(err.value, AirflowNotFoundException)  # code catching Airflow's own error still works
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timeout": 0}, "timeout=0 is not valid for Acme: expected seconds > 0"),
    ({"backoff": "1s"}, "backoff='1s' is not valid for Acme: expected a number of seconds >= 0"),
    ({"max_attempts": 0}, "max_attempts=0 is not valid for Acme: expected an integer >= 1"),
])
def test_hook_settings_are_validated_at_construction(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        AcmeHook(**kwargs)


# ---------------------------------------------------------------------------------------------- redirects

class AcmeKeyHook(AcmeHook):
    """Acme with an API-key header, like PolyAI (x-api-key) and ElevenLabs (xi-api-key)."""

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"x-api-key": settings.secret}


def test_a_redirect_to_another_host_is_refused_and_the_key_never_follows(acme, requests_mock):
    requests_mock.get(URL, status_code=302, headers={"Location": "https://elsewhere.test/v1/conversations?limit=10"})
    elsewhere = requests_mock.get("https://elsewhere.test/v1/conversations", json={"data": [], "next": None})
    with pytest.raises(VendorAPIError) as err:
        list(AcmeKeyHook().iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert str(err.value) == (
        "Acme answered HTTP 302 redirecting to https://elsewhere.test/v1/conversations (connection 'acme_default'); "
        "redirects to another host are not followed, so the API key is never sent there: set the connection's Host "
        "to the base URL the vendor redirects to"
    )
    assert not elsewhere.called
    assert requests_mock.call_count == 1


def test_a_redirect_within_the_host_or_to_https_is_followed_with_the_key(acme, requests_mock, set_connection):
    set_connection("acme_default", {"conn_type": "acme", "host": "http://acme.test", "password": "tok-123456"})
    requests_mock.get("http://acme.test/v1/conversations", status_code=301,
                      headers={"Location": "https://acme.test/v2/conversations?limit=10"})
    requests_mock.get("https://acme.test/v2/conversations", status_code=307, headers={"Location": "/v3/conversations"})
    final = requests_mock.get("https://acme.test/v3/conversations",
                              json={"data": [{"id": "1", "created_at": "2026-01-01T00:00:00Z"}], "next": None})
    got = list(AcmeKeyHook().iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert [c["id"] for c in got] == ["1"]
    assert final.last_request.headers["x-api-key"] == "tok-123456"
    assert [r.url for r in requests_mock.request_history] == [
        "http://acme.test/v1/conversations?limit=10", "https://acme.test/v2/conversations?limit=10",
        "https://acme.test/v3/conversations",
    ]


def test_a_redirect_loop_fails_after_a_bounded_number_of_requests(acme, requests_mock):
    requests_mock.get(URL, status_code=302, headers={"Location": URL})
    message = r"^Acme redirected more than 5 times in a row \(connection 'acme_default'\)$"
    with pytest.raises(VendorAPIError, match=message):
        list(AcmeKeyHook().iter_conversations(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    assert requests_mock.call_count == 6
