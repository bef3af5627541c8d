"""Each paginator on its own: literal bodies in, the next request out. No HTTP, no hook, no walk.

An :class:`Answer` is built by hand for every page, as the walk would hand it over; what a paginator returns is
compared with the exact :class:`Request` the walk would send next.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_conversations.engine.paginators import (
    Answer,
    BodyCursorPaginator,
    Context,
    OffsetPaginator,
    Paginator,
    Request,
)
from airflow_provider_conversations.exceptions import InvalidResponseError, PaginationError
from airflow_provider_conversations.hooks.anyreach import TieSafeCursorPaginator
from airflow_provider_conversations.hooks.parrotmob import NewestFirstPaginator

Item = dict[str, Any]
LOG = logging.getLogger("tests.engine.paginators")
#: 10:00 on the day every literal body below is about.
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def use(paginator: Paginator, vendor: str = "acme", name: str = "Acme") -> Paginator:
    """The paginator with the context the walk sets before its first request."""
    paginator.context = Context(vendor, name, LOG)
    return paginator


def iso(minutes: float) -> str:
    """``minutes`` after 10:00 (negative: before it), as ``...Z`` with microseconds."""
    return (T0 + timedelta(minutes=minutes)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def answer(request: Request | dict[str, Any], items: list[Item], *, body: Any = None, key: str = "created_at",
           fresh: list[Item] | None = None) -> Answer:
    """A page as the walk hands it to the paginator: the request, the body, its items and their parsed times."""
    request = request if isinstance(request, Request) else Request(request)
    times = [datetime.fromisoformat(item[key]) for item in items]
    return Answer(request, items if body is None else body, items, times, items if fresh is None else fresh)


def rows(n: int) -> list[Item]:
    """``n`` conversations a minute apart, newest first (offset paging only counts them)."""
    return [{"id": f"r{i}", "created_at": iso(50 - i)} for i in range(n)]


# ============================================================================================== BodyCursorPaginator


def elevenlabs_style(page_size: int = 100) -> Paginator:
    return use(BodyCursorPaginator("page_size", page_size, "cursor", cursor="next_cursor", has_more="has_more"))


def polyai_style() -> Paginator:
    return use(BodyCursorPaginator("limit", 1000, "cursor", cursor="cursor"))


def test_body_cursor_first_params_are_the_walks_plus_the_limit():
    assert elevenlabs_style(50).first({"agent_id": "a1", "call_start_after_unix": "1"}) == {
        "page_size": "50", "agent_id": "a1", "call_start_after_unix": "1"}


def test_body_cursor_found_in_the_body_goes_back_as_the_query_parameter():
    p = elevenlabs_style()
    first = p.first({"agent_id": "a1"})
    second = p.next(answer(first, rows(2), body={"next_cursor": "cur-A", "has_more": True}))
    assert second == Request({"page_size": "100", "agent_id": "a1", "cursor": "cur-A"})
    # a later cursor replaces the one sent, everything else stays
    third = p.next(answer(second, rows(2), body={"next_cursor": "cur-B", "has_more": True}))
    assert third == Request({"page_size": "100", "agent_id": "a1", "cursor": "cur-B"})


@pytest.mark.parametrize("flag", [False, None, "true", 1])
def test_body_cursor_ends_unless_has_more_is_true_even_with_a_dangling_cursor(flag):
    body = {"next_cursor": "dangling"} if flag is None else {"next_cursor": "dangling", "has_more": flag}
    assert elevenlabs_style().next(answer({"page_size": "100"}, rows(1), body=body)) is None


@pytest.mark.parametrize("cursor", [None, ""])
def test_body_cursor_has_more_without_a_cursor_raises(cursor):
    p = elevenlabs_style()
    with pytest.raises(InvalidResponseError) as err:
        p.next(answer({"page_size": "100"}, rows(1), body={"next_cursor": cursor, "has_more": True}))
    assert str(err.value) == ("Acme announced has_more=true without a next_cursor; the walk cannot continue and "
                              "would silently miss conversations")
    assert err.value.vendor == "acme"


@pytest.mark.parametrize(("cursor", "more"), [(5, True), ({"after": "x"}, True), (True, True), (5, False)])
def test_body_cursor_that_is_not_a_string_raises_even_on_the_last_page(cursor, more):
    with pytest.raises(InvalidResponseError) as err:
        elevenlabs_style().next(answer({"page_size": "100"}, rows(1), body={"next_cursor": cursor, "has_more": more}))
    assert str(err.value) == f"Acme returned a next_cursor that is not a string: {cursor!r}"
    assert err.value.vendor == "acme"


def test_body_cursor_without_a_has_more_field_follows_the_cursor_until_it_is_gone():
    p = polyai_style()
    first = p.first({"client_env": "live"})
    assert first == {"limit": "1000", "client_env": "live"}
    assert p.next(answer(first, rows(1), body={"cursor": "abc"})) == Request(
        {"limit": "1000", "client_env": "live", "cursor": "abc"})
    for body in ({"cursor": None}, {"cursor": ""}, {}):
        assert p.next(answer(first, rows(1), body=body)) is None, body


def test_body_cursor_without_a_has_more_field_still_refuses_a_cursor_that_is_not_a_string():
    with pytest.raises(InvalidResponseError, match=r"^Acme returned a cursor that is not a string: 7$"):
        polyai_style().next(answer({"limit": "1000"}, rows(1), body={"cursor": 7}))


# ============================================================================================== OffsetPaginator


def test_offset_first_request_has_no_offset_unless_asked_for():
    assert use(OffsetPaginator(50)).first({"sort": "x"}) == {"sort": "x", "limit": "50"}
    assert use(OffsetPaginator(50, first_offset=0)).first({"sort": "x"}) == {"sort": "x", "limit": "50", "offset": "0"}
    assert use(OffsetPaginator(50, "size", "skip", first_offset=0)).first({}) == {"size": "50", "skip": "0"}


def test_offset_full_pages_advance_by_what_was_received_and_a_short_page_ends():
    p = use(OffsetPaginator(3))
    first = p.first({"sort": "x"})
    second = p.next(answer(first, rows(3)))
    assert second == Request({"sort": "x", "limit": "3", "offset": "3"})
    third = p.next(answer(second, rows(3)))
    assert third == Request({"sort": "x", "limit": "3", "offset": "6"})
    assert p.next(answer(third, rows(2))) is None
    assert p.offset == 6


def test_offset_an_empty_page_ends():
    p = use(OffsetPaginator(3))
    assert p.next(answer(p.first({}), [])) is None


def test_offset_starts_from_the_first_offset_given():
    p = use(OffsetPaginator(3, first_offset=100))
    assert p.next(answer(p.first({}), rows(3))) == Request({"limit": "3", "offset": "103"})


def test_offset_next_offset_comes_from_the_body_whatever_the_page_length():
    p = use(OffsetPaginator(5000, next_offset="next_offset"))
    first = p.first({"client_env": "live"})
    second = p.next(answer(first, rows(2), body={"conversations": rows(2), "next_offset": 2}))
    assert second == Request({"client_env": "live", "limit": "5000", "offset": "2"})
    assert p.offset == 2
    assert p.next(answer(second, rows(1), body={"conversations": rows(1)})) is None


@pytest.mark.parametrize("body", [{"conversations": [], "next_offset": None}, {"conversations": [], "next_offset": "4"},
                                  {"conversations": [], "next_offset": True}, [{"id": "r0"}]])
def test_offset_next_offset_that_is_not_an_integer_ends(body):
    p = use(OffsetPaginator(5000, next_offset="next_offset"))
    assert p.next(answer(p.first({}), rows(5000), body=body)) is None  # even a full page: the body decides


def test_offset_stall_hint_names_the_next_offset():
    p = use(OffsetPaginator(3))
    p.next(answer(p.first({}), rows(3)))
    assert p.stall_hint() == (" (conversations are inserted ahead of the walk as fast as it pages; next offset 3); "
                              "use a larger page_size")


@pytest.mark.parametrize("declared", ["asc", "desc", None])
def test_offset_progress_is_judged_in_the_declared_order(declared):
    assert use(OffsetPaginator(3)).progress_order(declared) == declared


# ============================================================================================== TieSafeCursorPaginator

T = "2026-11-20T10:30:00.250000Z"  # the instant several conversations share
T_NEXT = "2026-11-20T10:30:00.250001Z"  # T + 1 µs: "at or before T" for a strict server
WINDOW = {"created_after": "2026-11-20T10:00:00Z", "created_before": "2026-11-20T10:59:59.999999Z"}


def conv(cid: str, created_at: str) -> Item:
    return {"id": cid, "created_at": created_at, "updated_at": created_at}


A, B, C, D, E, F = (conv("a", iso(50)), conv("b", iso(40)), conv("c", T), conv("d", T), conv("e", iso(20)),
                    conv("f", iso(10)))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tie_safe(page_size: int = 3, **kwargs: Any) -> TieSafeCursorPaginator:
    p = TieSafeCursorPaginator(page_size, **kwargs)
    use(p, "anyreach", "Anyreach")
    return p


def at_or_before(raw: str, limit: int = 3) -> Request:
    return Request({**WINDOW, "limit": str(limit), "cursor": b64(raw)})


def test_tie_safe_first_page_asks_for_the_page_size():
    p = tie_safe()
    assert p.first(WINDOW) == {"limit": "3", **WINDOW}
    assert p.comparison is None


@pytest.mark.parametrize("items", [[], [A], [A, B]])
def test_tie_safe_short_page_ends(items):
    p = tie_safe()
    assert p.next(answer(p.first(WINDOW), items)) is None


def test_tie_safe_first_full_page_is_followed_by_a_one_item_probe_of_the_comparison():
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [A, B, C]))
    # "at T, and not older than T": a conversation at T from an inclusive server, nothing from a strict one
    assert probe == Request({**WINDOW, "limit": "1", "cursor": b64(T), "created_after": T})
    assert probe.probe is False  # its conversation at T is a page of the walk, de-duplicated like any other
    assert p.comparison is None


def test_tie_safe_learns_an_inclusive_server_from_the_probe_and_probes_once():
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [A, B, C]))
    continuation = p.next(answer(probe, [C]))
    assert continuation == at_or_before(T)
    assert p.comparison == "inclusive"
    nxt = p.next(answer(continuation, [C, D, E]))  # C again (de-duplicated by the walk), then D
    assert nxt == at_or_before(E["created_at"])  # no second probe
    assert p.next(answer(nxt, [E, F])) is None


def test_tie_safe_learns_a_strict_server_from_the_probe_and_asks_just_after_the_instant():
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [A, B, C]))
    continuation = p.next(answer(probe, []))
    assert continuation == at_or_before(T_NEXT)
    assert p.comparison == "strict"
    nxt = p.next(answer(continuation, [C, D, E]))
    assert nxt == at_or_before("2026-11-20T10:20:00.000001Z")
    assert p.next(answer(nxt, [E, F])) is None


@pytest.mark.parametrize(
    ("raw", "spelt"),
    [
        ("2026-11-20T10:30:00.25Z", "2026-11-20T10:30:00.250001Z"),
        ("2026-11-20T10:30:00Z", "2026-11-20T10:30:00.000001Z"),
        ("2026-11-20T10:30:00.999999Z", "2026-11-20T10:30:01.000000Z"),
        ("2026-11-20T10:30:00.250000+00:00", "2026-11-20T10:30:00.250001+00:00"),
        ("2026-11-20T12:30:00.250000+02:00", "2026-11-20T12:30:00.250001+02:00"),
        ("2026-11-20T05:30:00-05:00", "2026-11-20T05:30:00.000001-05:00"),
        ("2026-11-20T10:30:00.250000", "2026-11-20T10:30:00.250001"),  # no offset: the vendor's UTC, kept so
        ("2026-11-20 10:30:00.25Z", "2026-11-20 10:30:00.250001Z"),
    ],
)
def test_tie_safe_strict_cursor_is_one_microsecond_later_spelt_like_the_vendor(raw, spelt):
    p = tie_safe(2, comparison="strict")
    first = p.first(WINDOW)
    assert p.next(answer(first, [conv("newer", "2026-11-20T10:50:00Z"), conv("last", raw)])) == at_or_before(spelt, 2)


@pytest.mark.parametrize(("comparison", "cursor"), [("inclusive", T), ("strict", T_NEXT)])
def test_tie_safe_full_page_on_one_instant_asks_again_with_the_maximum_limit(comparison, cursor):
    p = tie_safe(comparison=comparison)
    group = [conv(x, T) for x in "wxyz"]
    again = p.next(answer(p.first(WINDOW), group[:3]))
    assert again == at_or_before(cursor, 1000)  # the whole group at T must fit on one page
    assert p.next(answer(again, [*group, E])) is None  # fewer than 1000: the whole group, then the end


def test_tie_safe_full_page_on_one_instant_probes_first_when_the_comparison_is_unknown():
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [conv(x, T) for x in "xyz"]))
    assert probe == Request({**WINDOW, "limit": "1", "cursor": b64(T), "created_after": T})
    assert p.next(answer(probe, [conv("x", T)])) == at_or_before(T, 1000)


def test_tie_safe_limit_goes_back_to_the_page_size_after_the_group():
    p = tie_safe(comparison="inclusive")
    again = p.next(answer(p.first(WINDOW), [conv(x, T) for x in "xyz"]))
    group_page = [conv(x, T) for x in "wxyz"] + [conv(f"g{i}", iso(20 - i)) for i in range(996)]
    assert p.next(answer(again, group_page)) == at_or_before(group_page[-1]["created_at"], 3)


THOUSAND_TIES = (f"at least 1000 Anyreach conversations share created_at {T}: the API's cursor is that timestamp "
                 "alone, so it cannot page past them without losing or repeating conversations. Narrow the request "
                 "with filters (e.g. channel or direction) so that fewer than 1000 share one instant")


def test_tie_safe_a_thousand_on_one_instant_raises():
    p = tie_safe(1000)
    with pytest.raises(PaginationError) as err:
        p.next(answer(p.first(WINDOW), [conv(f"t{i}", T) for i in range(1000)]))
    assert str(err.value) == THOUSAND_TIES


def test_tie_safe_a_thousand_on_one_instant_raises_after_asking_again():
    p = tie_safe(comparison="inclusive")
    again = p.next(answer(p.first(WINDOW), [conv(x, T) for x in "xyz"]))
    with pytest.raises(PaginationError) as err:
        p.next(answer(again, [conv(f"t{i}", T) for i in range(1000)]))
    assert str(err.value) == THOUSAND_TIES


def test_tie_safe_server_ignoring_the_probe_raises():
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [A, B, C]))
    with pytest.raises(PaginationError) as err:
        p.next(answer(probe, [A]))  # newer than T: the cursor or the created_after bound was ignored
    assert str(err.value) == (
        f"Anyreach answered the probe cursor={T}&created_after={T} with a conversation created at "
        f"{A['created_at']}: it ignores its cursor or its created_after bound, so it cannot be paged exactly"
    )


@pytest.mark.parametrize("comparison", ["inclusive", "strict"])
def test_tie_safe_server_ignoring_the_cursor_raises(comparison):
    p = tie_safe(comparison=comparison)
    continuation = p.next(answer(p.first(WINDOW), [A, B, C]))
    with pytest.raises(PaginationError) as err:
        p.next(answer(continuation, [A, B, C]))  # the same page again, whatever is asked
    assert str(err.value) == (
        f"Anyreach answered a cursor at {T} with a conversation created later ({A['created_at']}): it is not "
        "walking back from the cursor; stopping instead of repeating or looping"
    )


@pytest.mark.parametrize("items", [[E, F], []])
def test_tie_safe_strict_server_not_comparing_at_microseconds_raises(items):
    p = tie_safe()
    probe = p.next(answer(p.first(WINDOW), [A, B, C]))
    continuation = p.next(answer(probe, []))  # strict
    with pytest.raises(PaginationError) as err:
        p.next(answer(continuation, items))  # T + 1 µs compared as T: D, at T, skipped
    assert str(err.value) == (
        f"Anyreach's cursor compares strictly, but cursor {T_NEXT} (one microsecond after {T}) did not return the "
        f"conversations created at {T}: the server does not compare cursors at microsecond precision, so "
        "conversations sharing a timestamp would be lost"
    )


def test_tie_safe_strict_server_once_verified_may_lose_a_conversation_to_a_deletion():
    p = tie_safe(comparison="strict")
    continuation = p.next(answer(p.first(WINDOW), [A, B, C]))
    nxt = p.next(answer(continuation, [C, D, E]))  # verified: T + 1 µs returned the conversations at T
    g, h = conv("g", iso(5)), conv("h", iso(1))
    assert p.next(answer(nxt, [F, g, h])) == at_or_before(iso(1).replace(".000000Z", ".000001Z"))  # E was deleted


def test_tie_safe_a_conversation_without_created_at_cannot_be_paged():
    p = tie_safe(2)
    with pytest.raises(InvalidResponseError) as err:
        p.next(answer(p.first(WINDOW), [A, {"id": "y", "updated_at": T}], key="updated_at"))
    assert str(err.value) == ("Anyreach returned a conversation (id='y') without a valid 'created_at' (None); it is "
                              "needed to page")


# ============================================================================================== NewestFirstPaginator

ORDER = {"order_by": "inserted_at_desc"}
INSERTED = "inserted_at"
START, END = T0, T0 + timedelta(hours=1)


def row(i: int | str, inserted: float, updated: float | None = None) -> Item:
    """Conversation ``i`` inserted (and updated) that many minutes after 10:00."""
    return {"id": f"c{i}", "inserted_at": iso(inserted), "updated_at": iso(inserted if updated is None else updated)}


def newest_first(page_size: int = 3, *, trusted: bool = True, end: datetime | None = None) -> NewestFirstPaginator:
    p = NewestFirstPaginator(page_size, first_offset=0, trusted=trusted, start=START, end=end)
    use(p, "parrotmob", "ParrotMob")
    return p


def drive(p: NewestFirstPaginator, history: list[Item], key: str = INSERTED) -> list[Request]:
    """Every request of a walk over a newest-first ``history`` served by offset and limit, until the end."""
    request = Request(p.first(dict(ORDER)))
    sent = [request]
    while True:
        offset, limit = int(request.params["offset"]), int(request.params["limit"])
        nxt = p.next(answer(request, history[offset:offset + limit], key=key))
        if nxt is None:
            return sent
        sent.append(nxt)
        request = nxt
        assert len(sent) < 200, "the walk does not end"


def offsets(sent: list[Request]) -> list[str]:
    return [str(r.params["offset"]) for r in sent]


def test_newest_first_first_request_asks_for_the_top_of_the_list():
    assert newest_first().first(dict(ORDER)) == {"order_by": "inserted_at_desc", "limit": "3", "offset": "0"}


def test_newest_first_trusted_stops_after_the_page_reaching_past_the_window_start():
    history = [row(1, 150), row(2, 130), row(3, 59.5),  # c1, c2 newer than the window
               row(4, 50), row(5, 20), row(6, 5),
               row(7, 1), row(8, -1), row(9, -30),  # c8 is older than the start: nothing below can be in it
               row(10, -40), row(11, -50), row(12, -55)]
    p = newest_first()
    assert offsets(drive(p, history)) == ["0", "3", "6"]
    assert p.progress_order("desc") == "desc"


def test_newest_first_a_page_ending_exactly_at_the_start_does_not_stop():
    history = [row(1, 30), row(2, 20), row(3, 0),  # the last one is AT the start: more may share it
               row(4, 0), row(5, -10), row(6, -20),
               row(7, -30)]
    assert offsets(drive(newest_first(), history)) == ["0", "3"]


def test_newest_first_untrusted_keeps_walking_while_the_order_is_ambiguous():
    # One item per page, sorted by BOTH keys: nothing proves updated_at order, so no early stop.
    history = [row(1, 20, 30), row(2, -30, -10), row(3, -40, -20)]
    p = newest_first(1, trusted=False)
    assert offsets(drive(p, history, key="updated_at")) == ["0", "1", "2", "3"]
    assert (p.proven, p.disordered, p.progress_order(None)) == (False, False, None)


def test_newest_first_untrusted_stops_once_the_pages_prove_updated_at_order():
    history = [row(1, 20, 30), row(2, -30, -10),  # both keys descending: ambiguous, and past the start
               row(3, -20, -20), row(4, -50, -30),  # c3: updated_at down while inserted_at up: the proof
               row(5, -60, -40), row(6, -70, -50)]
    p = newest_first(2, trusted=False)
    assert offsets(drive(p, history, key="updated_at")) == ["0", "2"]
    assert p.proven
    assert p.progress_order(None) == "desc"


def test_newest_first_disorder_warns_once_and_walks_to_the_end(caplog):
    # What the docs say happens: updated_at_desc really sorted by inserted_at.
    history = [row(1, 40, 50), row(2, 30, -5),
               row(3, 20, 45), row(4, 10, -20),  # c3: updated_at goes up
               row(5, -10, 30), row(6, -20, -30),  # updated past the start, yet more in the window follow
               row(7, -50, 20)]
    p = newest_first(2, trusted=False)
    with caplog.at_level(logging.WARNING, LOG.name):
        assert offsets(drive(p, history, key="updated_at")) == ["0", "2", "4", "6"]
    assert [r.getMessage() for r in caplog.records] == [
        "ParrotMob: asked for updated_at_desc, got conversation c3 (updated_at 2026-11-20T10:45:00Z) after c2 "
        "(updated_at 2026-11-20T09:55:00Z), so the list is not sorted by updated_at (the docs say updated_at_* sorts "
        "by inserted_at); walking to the end of the list instead of stopping early"
    ]
    assert (p.disordered, p.progress_order(None)) == (True, None)


def test_newest_first_progress_order_follows_proof_then_disorder():
    p = newest_first(2, trusted=False)
    first = p.first(dict(ORDER))
    assert p.progress_order(None) is None
    second = p.next(answer(first, [row(1, -90, 50), row(2, -30, 40)], key="updated_at"))  # proof
    assert p.progress_order(None) == "desc"
    third = p.next(answer(second, [row(3, -60, 30), row(4, -70, 35)], key="updated_at"))  # c4 goes up: disorder
    assert p.progress_order(None) is None
    # disordered: a page reaching past the start does not stop the walk any more
    assert p.next(answer(third, [row(5, -80, -10), row(6, -85, -20)], key="updated_at")) == Request(
        {**ORDER, "limit": "2", "offset": "6"})


def test_newest_first_after_proof_only_rows_of_one_page_are_compared():
    p = newest_first(2, trusted=False)
    second = p.next(answer(p.first(dict(ORDER)), [row(1, -90, 50), row(2, -30, 40)], key="updated_at"))
    # c3 was updated after c2 (rows moved between the two requests): not disorder, each page is one snapshot
    p.next(answer(second, [row(3, -95, 45), row(4, -96, 30)], key="updated_at"))
    assert (p.proven, p.disordered) == (True, False)


def test_newest_first_rows_shifted_by_inserts_are_not_order_evidence():
    # Rows inserted at the top push c2 and c3 onto page 2 again; the walk hands over only the new ones (fresh).
    p = newest_first(3, trusted=False)
    second = p.next(answer(p.first(dict(ORDER)), [row(1, -20, 50), row(2, -30, 40), row(3, -40, 30)],
                           key="updated_at"))
    page2 = [row(2, -30, 40), row(3, -40, 30), row(4, -35, -10)]
    assert p.next(answer(second, page2, key="updated_at", fresh=page2[2:])) is None  # c4 proves the order
    assert (p.proven, p.disordered) == (True, False)


def test_newest_first_stall_hint_names_the_next_offset():
    p = newest_first()
    p.next(answer(p.first(dict(ORDER)), [row(1, 50), row(2, 40), row(3, 30)], key=INSERTED))
    assert p.stall_hint() == (" (new conversations are inserted at the top as fast as it pages; next offset 3); use a "
                              "larger page_size")


# ---------------------------------------------------------------------------------------------- the seek


def history_with(newer: int, *, window: int = 6, older: int = 20) -> list[Item]:
    """``newer`` conversations after the window's end, then ``window`` inside it, then ``older`` before it."""
    return ([row(f"n{i}", 200 - i * 0.01) for i in range(newer)] + [row(f"w{i}", 50 - 10 * i) for i in range(window)]
            + [row(f"o{i}", -1 - i) for i in range(older)])


@pytest.mark.parametrize(
    ("newer", "probed"),
    [
        (10, [10]),
        (11, [10, 11]),
        (12, [10, 11, 13, 12]),
        # galloping 10, +1, +3, +7, ... past 200, then bisecting the last gap of 128
        (200, [10, 11, 13, 17, 25, 41, 73, 137, 265, 201, 169, 185, 193, 197, 199, 200]),
    ],
)
def test_newest_first_seek_gallops_then_bisects_with_one_item_probes(newer, probed, caplog):
    p = newest_first(10, end=END)
    with caplog.at_level(logging.INFO, LOG.name):
        sent = drive(p, history_with(newer))
    probes = [r for r in sent if r.probe]
    assert [int(r.params["offset"]) for r in probes] == probed
    assert {r.params["limit"] for r in probes} == {"1"}
    assert all(r.params["order_by"] == "inserted_at_desc" for r in probes)
    pages = [r for r in sent if not r.probe]
    # the first page, then exactly where the window begins at the normal page size (one page: 6 in, 4 older)
    assert pages == [Request({**ORDER, "limit": "10", "offset": "0"}),
                     Request({**ORDER, "limit": "10", "offset": str(newer)})]
    assert sent[1].probe  # the seek starts right after the first page
    assert (f"ParrotMob: {newer} conversations are newer than the window; continuing at offset {newer}"
            in caplog.messages)


@pytest.mark.parametrize(("newer", "count"), [(10, 1), (11, 2), (12, 4), (200, 16), (1000, 20), (5000, 26)])
def test_newest_first_seek_costs_about_two_log2_probes(newer, count):
    sent = drive(newest_first(10, end=END), history_with(newer))
    assert sum(r.probe for r in sent) == count
    assert [r.params["offset"] for r in sent if not r.probe] == ["0", str(newer)]


def test_newest_first_seek_past_the_end_of_the_list_ends_the_walk():
    # 15 conversations, all newer than the window: probes 17 and 15 find nothing, the walk resumes at 15 and ends.
    sent = drive(newest_first(10, end=END), history_with(15, window=0, older=0))
    assert [(r.params["offset"], r.probe) for r in sent] == [
        ("0", False), ("10", True), ("11", True), ("13", True), ("17", True), ("15", True), ("14", True),
        ("15", False)]


def test_newest_first_seeks_once_per_walk():
    p = newest_first(3, end=END)
    probe = p.next(answer(p.first(dict(ORDER)), [row(1, 90), row(2, 80), row(3, 70)], key=INSERTED))
    assert probe == Request({**ORDER, "limit": "1", "offset": "3"}, probe=True)
    resume = p.next(answer(probe, [row(4, 30)], key=INSERTED))
    assert resume == Request({**ORDER, "limit": "3", "offset": "3"})
    # a page entirely newer again (rows inserted meanwhile) is just paged through
    again = p.next(answer(resume, [row(5, 95), row(6, 85), row(7, 75)], key=INSERTED))
    assert again == Request({**ORDER, "limit": "3", "offset": "6"})


def test_newest_first_no_seek_without_a_window_end_or_on_a_short_page():
    p = newest_first(3)  # no end: the untrusted walks and the connection test
    assert p.next(answer(p.first(dict(ORDER)), [row(1, 90), row(2, 80), row(3, 70)], key=INSERTED)) == Request(
        {**ORDER, "limit": "3", "offset": "3"})
    p = newest_first(3, end=END)
    assert p.next(answer(p.first(dict(ORDER)), [row(1, 90), row(2, 80)], key=INSERTED)) is None  # the end of the list
