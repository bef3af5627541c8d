"""``extra_params``, every vendor alike: query parameters newer than the provider, on every request of a walk.

Each vendor declares its paging, window and order parameters (``filter_set.reserved``); those are refused in
``extra_params``, naming the reason, and a test below checks that the declaration covers every parameter the
hook sets itself. Everything else goes out as given on every page and every parallel sub-window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_conversations.exceptions import InvalidFilterError
from airflow_provider_conversations.hooks.base import ConversationsHook
from tests.conftest import FakeClock
from tests.contract.all_vendors import APIS
from tests.contract.test_every_vendor import query
from tests.contract.vendors import Vendor

every_api = pytest.mark.parametrize("vendor", APIS, ids=lambda v: v.id)
bounded = pytest.mark.parametrize("vendor", [v for v in APIS if v.hook.server_bounded], ids=lambda v: v.id)
EXTRA = {"brand_new": "x", "also_new": ["a", "b"], "flag": True, "ratio": 0.5, "count": 3, "dropped": None}
SENT = {"brand_new": ["x"], "also_new": ["a", "b"], "flag": ["true"], "ratio": ["0.5"], "count": ["3"]}


@pytest.fixture
def connect(set_connection: Any, fake_clock: Any) -> Callable[..., tuple[ConversationsHook, FakeClock]]:
    def make(vendor: Vendor, **kwargs: Any) -> tuple[ConversationsHook, FakeClock]:
        set_connection(vendor.conn_id, vendor.connection)
        hook = vendor.hook(vendor.conn_id, **kwargs)
        return hook, fake_clock(hook)

    return make


def continuation(vendor: Vendor, i: int) -> Any:
    """What page ``i`` announces as the next one (an offset for PolyAI v1, an opaque cursor elsewhere)."""
    return i + 1 if vendor.id == "polyai-v1" else f"cur-{i}"


def own_params(vendor: Vendor, requests: list[Any]) -> set[str]:
    """The names the hook sent of its own accord (no filters were given)."""
    return {name for r in requests for name in query(r)} - set(EXTRA)


def three_pages(vendor: Vendor) -> list[dict[str, Any]]:
    """Responses that walk ``vendor.ids(3)`` in pages of one (``page_size=1``)."""
    if vendor.id == "anyreach":
        # a full page of one, its tie probe (a strict server: nothing at T), then everything at or before T
        return [{"json": vendor.page(1)}, {"json": vendor.page(0)}, {"json": vendor.page(3)}]
    return [
        *({"json": vendor.page(1, first=i, after=continuation(vendor, i))} for i in range(2)),
        {"json": vendor.page(1, first=2, more=False)},
        {"json": vendor.page(0)},  # for an offset walk, whose last full page asks for one more
    ]


@every_api
def test_extra_params_reach_every_page_and_the_hook_sets_only_reserved_names(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, three_pages(vendor))
    hook, _ = connect(vendor, page_size=1)
    got = [str(c[vendor.id_field]) for c in hook.iter_conversations(vendor.start, vendor.end, extra_params=EXTRA)]
    assert got == vendor.ids(3)
    assert requests_mock.call_count >= 3
    for request in requests_mock.request_history:
        sent = query(request)
        assert {k: sent[k] for k in SENT} == SENT, request.url
        assert "dropped" not in sent
    # every parameter the hook sets itself (paging, window, order) is declared reserved, so extra_params cannot
    # override it: a vendor that adds one without declaring it fails here
    assert own_params(vendor, requests_mock.request_history) <= set(vendor.hook.filter_set.reserved)


@bounded
def test_extra_params_reach_every_parallel_sub_window(vendor, connect, requests_mock):
    requests_mock.get(vendor.url, json=vendor.page(0))
    hook, _ = connect(vendor)
    pages = list(hook.iter_pages(vendor.start, vendor.end, max_parallel=2, extra_params={"brand_new": ["x", "y"]}))
    assert len(pages) == requests_mock.call_count > 1
    assert all(query(r)["brand_new"] == ["x", "y"] for r in requests_mock.request_history)


@every_api
def test_reserved_params_are_refused_in_extra_params_before_any_request(vendor, connect, requests_mock):
    hook, _ = connect(vendor)
    for name, reason in vendor.hook.filter_set.reserved.items():
        with pytest.raises(InvalidFilterError) as err:
            hook.iter_pages(vendor.start, vendor.end, extra_params={name: "1"})
        assert str(err.value) == (f"extra_params {name!r} is refused: it is one of the paging, window or order "
                                  f"parameters the {vendor.name} hook sets itself ({reason})")
    assert requests_mock.call_count == 0


@every_api
def test_a_known_filter_in_extra_params_is_sent_to_filters(vendor, connect, requests_mock):
    hook, _ = connect(vendor)
    spec = vendor.hook.filter_set.filters[0]
    with pytest.raises(InvalidFilterError) as err:
        hook.iter_pages(vendor.start, vendor.end, extra_params={spec.name: "x"})
    assert str(err.value) == (f"extra_params {spec.name!r} is a known {vendor.name} filter; pass it in filters, where "
                              f"its value is checked (allowed: {spec.allowed()})")
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(("extra", "message"), [
    ({"x": {"a": 1}}, "extra_params 'x' got {'a': 1}; allowed: a string, a number, true or false, or a non-empty list "
                      "of them (sent to {vendor} as a repeated query parameter)"),
    ({"x": ["a", ["b"]]}, "extra_params 'x' got ['a', ['b']]; allowed: a string, a number, true or false, or a "
                          "non-empty list of them (sent to {vendor} as a repeated query parameter)"),
    ({"x": []}, "extra_params 'x' got [] (an empty list); allowed: a string, a number, true or false, or a non-empty "
                "list of them (sent to {vendor} as a repeated query parameter)"),
    ({"x": float("nan")}, "extra_params 'x' got nan; allowed: a string, a number, true or false, or a non-empty list "
                          "of them (sent to {vendor} as a repeated query parameter)"),
    ({"": "a"}, "extra_params name '' is not valid; expected a non-empty string"),
    ({3: "a"}, "extra_params name 3 is not valid; expected a non-empty string"),
    (["x"], "extra_params must be a dict of query parameter names to values (strings, numbers, booleans, or lists "
            "of them), got list ['x']"),
])
@every_api
def test_bad_extra_params_are_refused_before_any_request(vendor, connect, requests_mock, extra, message):
    hook, _ = connect(vendor)
    with pytest.raises(InvalidFilterError) as err:
        hook.iter_pages(vendor.start, vendor.end, extra_params=extra)
    assert str(err.value) == message.replace("{vendor}", vendor.name)
    assert requests_mock.call_count == 0


@every_api
def test_one_log_line_names_the_extra_params_never_the_key(vendor, connect, requests_mock, logs):
    requests_mock.get(vendor.url, json=vendor.page(0))
    hook, _ = connect(vendor)
    list(hook.iter_pages(vendor.start, vendor.end, extra_params={"zeta": "z", "alpha": 1}))
    text = logs()
    line = f"{vendor.name}: sending extra query parameters this provider does not know, unchecked: alpha, zeta"
    assert text.count(line) == 1
    assert vendor.key not in text


@every_api
def test_an_unknown_filter_points_to_extra_params(vendor, connect, requests_mock):
    hook, _ = connect(vendor)
    with pytest.raises(InvalidFilterError) as err:
        hook.iter_pages(vendor.start, vendor.end, filters={"brand_new": "x"})
    assert str(err.value).startswith(f"unknown {vendor.name} filter 'brand_new'; allowed filters: ")
    assert str(err.value).endswith(". To send a query parameter this provider does not know yet, pass it in "
                                   "extra_params")
    assert requests_mock.call_count == 0
