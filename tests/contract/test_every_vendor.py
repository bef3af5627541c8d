"""What every vendor hook must do alike, checked once per vendor API against requests-mock.

Retries and their limits, who is told when a key is refused, the vendor's own words in an error, a walk that
cannot make progress, and the key that never leaves its header. The vendors' differences are data
(``vendors.py``, and the ``contract_fixture.py`` of a vendor outside the package: see ``all_vendors.py``); their
traps stay in ``tests/test_<vendor>_hook.py``. Every wait runs on the fake clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    InvalidResponseError,
    PaginationError,
    RetriesExhaustedError,
    VendorAPIError,
)
from airflow_provider_conversations.hooks.base import ConversationsHook
from tests.conftest import FakeClock
from tests.contract.all_vendors import APIS, AUTH_HEADERS, VENDORS
from tests.contract.vendors import Vendor

every_api = pytest.mark.parametrize("vendor", APIS, ids=lambda v: v.id)
every_vendor = pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.id)
with_has_more = pytest.mark.parametrize("vendor", [v for v in APIS if v.has_more], ids=lambda v: v.id)
that_can_loop = pytest.mark.parametrize("vendor", [v for v in APIS if v.loop], ids=lambda v: v.id)


@pytest.fixture
def connect(set_connection: Any, fake_clock: Any) -> Callable[..., tuple[ConversationsHook, FakeClock]]:
    """``connect(vendor, **hook_kwargs)``: the vendor's connection defined, a hook on it, and the hook's fake clock."""

    def make(vendor: Vendor, **kwargs: Any) -> tuple[ConversationsHook, FakeClock]:
        set_connection(vendor.conn_id, vendor.connection)
        hook = vendor.hook(vendor.conn_id, **kwargs)
        return hook, fake_clock(hook)

    return make


def walk(hook: ConversationsHook, vendor: Vendor) -> list[str]:
    return [str(c[vendor.id_field]) for c in hook.iter_conversations(vendor.start, vendor.end)]


def query(request: Any) -> dict[str, list[str]]:
    """The query exactly as sent (requests-mock's ``qs`` lower-cases values)."""
    return parse_qs(urlsplit(request.url).query, keep_blank_values=True)


def said(vendor: Vendor, status: int, code: str, message: str, request_id: str) -> str:
    """How an exception shows an error body of the vendor's envelope: only what that envelope carries."""
    parts = [f"HTTP {status}"]
    if "code" in vendor.carries:
        parts.append(f"code={code}")
    parts.append(f"message={message!r}")
    if "request_id" in vendor.carries:
        parts.append(f"request_id={request_id}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- retries


@every_api
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success(vendor, connect, requests_mock, status):
    requests_mock.get(vendor.url, [{"status_code": status, "text": "upstream trouble"}, {"json": vendor.page(2)}])
    hook, clock = connect(vendor)
    assert walk(hook, vendor) == vendor.ids(2)
    assert requests_mock.call_count == 2
    assert hook.stats.retries == 1
    assert len(clock.sleeps) == 1  # one back-off wait, on the fake clock


@every_api
@pytest.mark.parametrize("status", [429, 503])
def test_exhausted_retries_say_what_happened(vendor, connect, requests_mock, status):
    code, message = (vendor.busy[-1], "slow down") if status == 429 else ("service_unavailable", "maintenance")
    requests_mock.get(vendor.url, status_code=status, json=vendor.error(code, message, "req_9"))
    hook, clock = connect(vendor, max_attempts=3)
    with pytest.raises(RetriesExhaustedError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 3
    assert len(clock.sleeps) == 2
    last = said(vendor, status, code, message, "req_9")
    assert re.fullmatch(
        rf"{vendor.name} request to {re.escape(vendor.url)} failed after 3 attempts over \d+\.\d s "
        rf"\(limits: 3 attempts, 300 s\); last error: {re.escape(last)}", str(err.value),
    ), str(err.value)
    e = err.value
    assert (e.vendor, e.status, e.vendor_message) == (vendor.hook.conn_type, status, message)
    assert e.code == (code if "code" in vendor.carries else None)
    assert e.request_id == ("req_9" if "request_id" in vendor.carries else None)


@every_api
def test_429_honours_retry_after_then_succeeds(vendor, connect, requests_mock):
    for code in vendor.busy:  # each of the vendor's "too many requests" answers
        requests_mock.get(vendor.url, [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": vendor.error(code, "slow down", "req_429")},
            {"json": vendor.page(1)},
        ])
        hook, clock = connect(vendor)
        assert walk(hook, vendor) == vendor.ids(1), code
        assert clock.sleeps == [7.0], code
        assert hook.stats.retries == 1
        assert hook.stats.retry_wait_seconds == 7.0
        assert requests_mock.call_count == 2
        requests_mock.reset_mock()


@every_vendor
def test_a_200_that_is_not_json_is_retried_then_fails(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, text="<html>bad gateway</html>")
    hook, _ = connect(vendor, max_attempts=2)
    with pytest.raises(RetriesExhaustedError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 2
    assert str(err.value).endswith(
        "(limits: 2 attempts, 300 s); last error: HTTP 200 with a body that is not valid JSON (24 bytes, starts "
        "'<html>bad gateway</html>')"
    )
    assert err.value.status == 200


@every_api
def test_a_connection_error_is_retried(vendor, connect, requests_mock, logs):
    requests_mock.get(vendor.url, [{"exc": requests.ConnectionError("connection reset")}, {"json": vendor.page(1)}])
    hook, clock = connect(vendor)
    assert walk(hook, vendor) == vendor.ids(1)
    assert requests_mock.call_count == 2
    assert hook.stats.retries == 1
    assert len(clock.sleeps) == 1
    assert (f"{vendor.name}: attempt 1/6 failed (connection error (ConnectionError: connection reset)); retrying in"
            in logs())


@every_vendor
def test_connection_errors_exhaust_the_retries(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, exc=requests.ConnectionError("connection refused"))
    hook, _ = connect(vendor, max_attempts=2)
    with pytest.raises(RetriesExhaustedError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 2
    assert str(err.value).endswith("last error: connection error (ConnectionError: connection refused)")
    assert err.value.status is None


# ---------------------------------------------------------------------------------------------- refusals


@every_vendor
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_fails_at_once_naming_the_connection(vendor, connect, requests_mock, status):
    requests_mock.get(vendor.url, status_code=status, json=vendor.error("invalid_api_key", "Invalid API key", "req_1"))
    hook, clock = connect(vendor)
    with pytest.raises(AuthenticationError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 1  # never retried
    assert clock.sleeps == []
    assert str(err.value) == (
        f"{vendor.name} rejected the API key of connection {vendor.conn_id!r}: "
        f"{said(vendor, status, 'invalid_api_key', 'Invalid API key', 'req_1')}. Check the key in the connection's "
        "Password field (and its scopes)."
    )
    assert vendor.key not in str(err.value)
    assert (err.value.vendor, err.value.status) == (vendor.hook.conn_type, status)


@every_vendor
def test_a_refused_request_shows_the_vendors_own_words(vendor, connect, requests_mock):
    refusal = vendor.refusal
    requests_mock.get(vendor.url, status_code=refusal.status, reason=refusal.reason, json=refusal.body)
    hook, _ = connect(vendor)
    with pytest.raises(VendorAPIError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 1  # the DAG author must act: never retried
    e = err.value
    assert type(e) is VendorAPIError
    assert (e.vendor, e.status, e.code, e.param, e.vendor_message, e.request_id) == (
        vendor.hook.conn_type, refusal.status, refusal.code, refusal.param, refusal.message, refusal.request_id)
    assert str(e) == f"{vendor.name} refused the request (connection {vendor.conn_id!r}): {refusal.shown}"


# ---------------------------------------------------------------------------------------------- pagination


@every_api
def test_an_empty_window_is_one_request(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, json=vendor.page(0))
    hook, _ = connect(vendor)
    assert walk(hook, vendor) == []
    assert requests_mock.call_count == 1
    assert hook.stats.pages == 1


@that_can_loop
def test_the_same_request_twice_is_a_loop(vendor, connect, requests_mock):
    after, shown = vendor.loop
    requests_mock.get(vendor.url, [{"json": vendor.page(1, first=i, after=after)} for i in range(3)])
    hook, _ = connect(vendor)
    with pytest.raises(PaginationError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 2
    match = re.fullmatch(rf"{vendor.name} pagination is not making progress: the request (\S+) was already sent in "
                         r"this walk \(page 3\); stopping instead of looping forever", str(err.value))
    assert match, str(err.value)
    repeated = match[1].split("&")
    assert shown in repeated
    # the request shown is the second one, which the walk was about to send again
    assert dict(p.split("=", 1) for p in repeated) == {k: v for k, (v,) in query(requests_mock.last_request).items()}


@with_has_more
@pytest.mark.parametrize("before", [0, 1], ids=["first-page", "second-page"])
def test_has_more_false_wins_over_a_dangling_cursor(vendor, connect, requests_mock, before):
    requests_mock.get(vendor.url, [
        *({"json": vendor.page(1, first=i, after=f"cur-{i}")} for i in range(before)),
        {"json": vendor.page(1, first=before, after="cur-dangling", more=False)},
        {"json": vendor.page(1, first=before + 1)},  # must never be asked for
    ])
    hook, _ = connect(vendor)
    assert walk(hook, vendor) == vendor.ids(before + 1)
    assert requests_mock.call_count == before + 1
    cursors = [query(r).get(vendor.has_more.param) for r in requests_mock.request_history]
    assert cursors == [None, *([f"cur-{i}"] for i in range(before))]


@with_has_more
def test_has_more_without_a_cursor_fails_instead_of_truncating(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, json=vendor.page(1, more=True))
    hook, _ = connect(vendor)
    with pytest.raises(InvalidResponseError) as err:
        walk(hook, vendor)
    assert requests_mock.call_count == 1
    flag, cursor = vendor.has_more.flag, vendor.has_more.cursor
    assert str(err.value) == (f"{vendor.name} announced {flag}=true without a {cursor}; the walk cannot continue "
                              "and would silently miss conversations")
    assert err.value.vendor == vendor.hook.conn_type


# ---------------------------------------------------------------------------------------------- the key


@every_api
def test_the_key_goes_in_the_vendors_header_to_the_exact_list_url(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, json=vendor.page(1))
    hook, _ = connect(vendor)
    walk(hook, vendor)
    (req,) = requests_mock.request_history
    assert req.url.split("?")[0] == vendor.url
    assert hook.id_field == vendor.id_field
    assert {name: req.headers.get(name) for name in AUTH_HEADERS} == {
        name: vendor.auth.get(name) for name in AUTH_HEADERS}
    assert req.headers["User-Agent"].startswith("airflow-provider-conversations/")
    assert req.headers["Accept"] == "application/json"


@every_api
def test_the_key_is_never_in_a_url_an_error_or_a_log(vendor, connect, requests_mock, logs):
    requests_mock.get(vendor.url, [
        {"status_code": 500, "text": "upstream trouble"},
        {"json": vendor.page(2)},
        {"status_code": 401, "json": vendor.error("invalid_api_key", "Invalid API key", "req_1")},
    ])
    hook, _ = connect(vendor)
    assert walk(hook, vendor) == vendor.ids(2)
    with pytest.raises(AuthenticationError) as err:
        walk(hook, vendor)
    text = logs()
    assert f"{vendor.name}: attempt 1/6 failed (HTTP 500" in text  # the log was captured
    assert vendor.key not in text
    assert vendor.key not in str(err.value)
    assert requests_mock.call_count == 3
    assert not [r.url for r in requests_mock.request_history if vendor.key in r.url]


@every_api
def test_test_connection_reports_without_raising(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, json=vendor.page(0))
    hook, _ = connect(vendor)
    assert hook.test_connection() == (True, f"Connected to {vendor.name} at {vendor.host}: the API key was accepted.")
    assert query(requests_mock.request_history[0]) == vendor.one_item_query
    requests_mock.get(vendor.url, status_code=401, json=vendor.error("invalid_api_key", "bad key", "req_1"))
    ok, message = connect(vendor)[0].test_connection()
    assert not ok
    assert message.startswith(f"{vendor.name} connection test failed: {vendor.name} rejected the API key of "
                              f"connection {vendor.conn_id!r}: HTTP 401")
