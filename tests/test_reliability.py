"""Fault injection for all five vendors: randomized runs stay exact, failures are loud and leave nothing behind.

- Randomized runs (``tools.reliability``): 50 consecutive one-hour windows per vendor (and PolyAI's v1 API),
  exported with the object-storage operator while 10% of requests draw a random fault (5xx in bursts of three,
  so more than 10% fail) and conversations are inserted and updated during the walks. The seed is in each
  test id and the markdown table of every run is printed at the end of the module.
- The simulator switches themselves: each ``Retry-After`` form is honoured, ``empty`` pages carry a fresh
  cursor to the same position, vendors refuse faults their API cannot express, updates never move a
  conversation's creation time.
- Permanent failure (retries exhausted): the task fails saying what happened and after how many attempts,
  with no object and no temporary file left.
- A window the hook cannot make progress in (a repeated cursor, an offset that does not advance, endless
  empty pages, inserts outrunning an offset walk, more ties than a page holds) fails within a bounded number
  of requests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_conversations.exceptions import PaginationError, RetriesExhaustedError
from airflow_provider_conversations.hooks import hook_class
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import Churn, Faults, VendorSimulator
from tools import reliability

SEED = 7
WINDOWS = 50
H = timedelta(hours=1)
FAST = {"backoff": 0.001, "backoff_max": 0.01, "timeout": (5.0, 0.3)}


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[list[reliability.Result]]:
    """Collects the randomized runs; prints their markdown table (with seeds) after the module's tests."""
    results: list[reliability.Result] = []
    yield results
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if results and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_sep("-", f"fault-injection runs, seed {SEED} (python -m tools.reliability reproduces them)")
            reporter.write_line(reliability.markdown(results))


# ---------------------------------------------------------------------------------------------- randomized runs


@pytest.mark.parametrize("profile", list(reliability.PROFILES), ids=[f"{p}-seed{SEED}" for p in reliability.PROFILES])
def test_randomized_fault_run_exports_exactly_the_ground_truth(profile: str, table: list[reliability.Result]):
    result = reliability.run(profile, seed=SEED, windows=WINDOWS, per_window=12, rate=0.10, burst=3,
                             inserts=0.05, updates=0.05, read_timeout=0.3)
    table.append(result)
    about = result.summary()  # the seed and everything injected, in every failure message
    kinds = set(reliability.PROFILES[profile].weights)
    assert result.windows == WINDOWS, about
    assert result.fault_share >= 0.10, about
    assert set(result.faults) == kinds, about
    assert result.bursts >= 1, about
    assert result.inserted > 0, about
    assert result.updated > 0, about
    # Every fault but an empty page (a valid answer) costs a retry: none was taken for a page. (On a loaded
    # machine a normal answer can also outlast the 0.3 s read timeout now and then, and is retried too.)
    needing_retry = result.faulted - result.faults.get("empty", 0)
    # A fault that mangles the body of a 404 detail (Replyful's archived conversations) leaves a final 404.
    assert needing_retry - result.details_missing <= result.retries <= needing_retry + 2, about
    if reliability.PROFILES[profile].details:
        assert result.details_checked == result.exported, about
    assert result.wait_seconds > 0, about
    assert (result.duplicates, result.missing, result.unexpected, result.misplaced) == (0, 0, 0, 0), (
        f"{about}; examples: {result.examples}")
    assert result.exported == result.truth == WINDOWS * 12, about
    assert result.exact, about
    if profile == "parrotmob":
        # Inserts at the top of the newest-first list shifted offset pages under the walks: repeats were served
        # and dropped, none written.
        assert result.repeats_dropped > 0, about


def test_markdown_table_has_a_row_per_run_and_flags_an_inexact_one():
    ok = reliability.Result(
        profile="polyai", vendor="polyai", seed=3, windows=50, conversations=600, requests=200,
        faults={"429": 2, "reset": 1}, bursts=0, inserted=4, updated=5, retries=3, wait_seconds=0.5,
        repeats_dropped=0, exported=600, truth=600, duplicates=0, missing=0, unexpected=0, misplaced=0,
        seconds=1.25,
    )
    bad = reliability.Result(**{**vars(ok), "profile": "replyful", "exported": 599, "missing": 1})
    lines = reliability.markdown([ok, bad]).splitlines()
    assert lines[0].startswith("| vendor | seed | windows |")
    assert lines[2] == ("| polyai | 3 | 50 | 600 | 200 | 3 (1.5%) | 429: 2, reset: 1 (0 bursts of 5xx) | 4 / 5 | 0 | 3 "
                        "| 0.5 | 600 | 600 | 0 | 0 | yes | 1.2 |")
    assert lines[3].startswith("| replyful |")
    assert "| **NO** |" in lines[3]
    assert len(lines) == 4
    again = reliability.Result(**{**vars(ok), "seed": 4, "requests": 300, "faults": {"503": 6}, "retries": 6})
    summary = reliability.summary_markdown([ok, bad, again]).splitlines()
    assert summary[0].startswith("| vendor | seeds | windows |")
    assert summary[2] == ("| polyai | 3, 4 | 100 | 1,200 | 500 | 9 (1.8%) | 9 | 1.0 | 8 / 10 | 1,200 | 1,200 | 0 | 0 "
                          "| yes |")
    assert summary[3].startswith("| replyful | 3 |")
    assert summary[3].endswith("| 599 | 600 | 0 | 1 | **NO** |")


def test_cli_prints_the_table_and_fails_on_nothing_when_exact(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    out = tmp_path / "table.md"
    code = reliability.main(["--profiles", "replyful", "--windows", "4", "--per-window", "5", "--seeds", "11",
                             "--output", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "replyful seed=11: 4 windows" in text
    assert "EXACT" in text
    assert "| replyful | 11 | 4 | 20 |" in text
    assert out.read_text().startswith("| vendor | seeds |")  # the per-vendor summary, then every run
    assert out.with_suffix(".json").exists()


def test_cli_exits_1_naming_a_run_that_failed_or_was_not_exact(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]):
    def fake(profile: str, *, seed: int, **options: Any) -> reliability.Result:
        if profile == "anyreach":
            raise RetriesExhaustedError("Anyreach request failed after 20 attempts", vendor="anyreach")
        return reliability.Result(
            profile=profile, vendor=profile, seed=seed, windows=1, conversations=12, requests=3, faults={},
            bursts=0, inserted=0, updated=0, retries=0, wait_seconds=0.0, repeats_dropped=0, exported=11, truth=12,
            duplicates=0, missing=1, unexpected=0, misplaced=0, seconds=0.1)

    monkeypatch.setattr(reliability, "run", fake)
    assert reliability.main(["--profiles", "anyreach,replyful", "--windows", "1", "--seeds", "2"]) == 1
    text = capsys.readouterr().out
    assert "anyreach seed=2: FAILED: RetriesExhaustedError: Anyreach request failed after 20 attempts" in text
    assert "replyful seed=2: 1 windows" in text
    assert "NOT EXACT" in text
    assert "SOME RUNS FAILED OR WERE NOT EXACT (1 failed)" in text


# ---------------------------------------------------------------------------------------------- the switches


@pytest.fixture
def poly(sim, set_connection) -> VendorSimulator:
    s = sim("polyai", conversations=200, span=6 * H, environments=["live"])
    set_connection("polyai_default", s.connection())
    return s


@pytest.mark.parametrize(("kind", "retry_after", "low", "high"), [
    ("429", "0.25", 0.25, 0.25),   # delta-seconds: exactly what was asked
    ("429-date", None, 0.0, 1.0),  # an HTTP date one second ahead, at whole-second granularity
    ("429-none", None, 0.0005, 0.001),  # no header: the hook's own exponential back-off (first wait, jittered)
])
def test_each_retry_after_form_is_honoured(poly, kind, retry_after, low, high):
    poly.faults = Faults(schedule={2: kind}, retry_after=retry_after)
    hook = PolyAIHook(page_size=10, **FAST)
    got = [c["id"] for c in hook.iter_conversations(DEFAULT_START, DEFAULT_START + 2 * H)]
    assert sorted(got) == sorted(poly.ground_truth(DEFAULT_START, DEFAULT_START + 2 * H))
    assert poly.stats.faults == {kind: 1}
    assert hook.stats.retries == 1
    assert low <= hook.stats.retry_wait_seconds <= high
    faulted, retried = poly.requests[1], poly.requests[2]
    assert faulted.outcome == kind
    assert faulted.raw_query == retried.raw_query
    assert retried.received - faulted.received >= hook.stats.retry_wait_seconds - 0.005


def test_a_burst_repeats_a_server_error_on_consecutive_requests(poly):
    poly.faults = Faults(rate=0.5, kinds=("502",), burst=3, seed=2)
    for _ in range(60):
        requests.get(f"{poly.url}/v3/acct-1/proj-1/conversations", headers={"x-api-key": poly.token}, timeout=5)
    outcomes = "".join("x" if r.outcome else "." for r in poly.requests)
    assert set(r.outcome for r in poly.requests) == {"502", ""}
    runs = outcomes.split(".")[:-1]  # the last run may be cut off by the end of the loop
    assert poly.faults.bursts >= 5
    assert all(len(run) % 3 == 0 for run in runs), outcomes  # every run of faults is made of whole bursts


def test_a_slow_answer_times_out_and_is_retried(poly):
    poly.faults = Faults(schedule={1: "slow"}, slow_seconds=0.6)
    hook = PolyAIHook(page_size=50, **FAST)
    got = [c["id"] for c in hook.iter_conversations(DEFAULT_START, DEFAULT_START + H)]
    assert sorted(got) == sorted(poly.ground_truth(DEFAULT_START, DEFAULT_START + H))
    assert (hook.stats.retries, poly.stats.faults) == (1, {"slow": 1})
    assert poly.requests[1].received - poly.requests[0].received == pytest.approx(0.3, abs=0.1)


CURSOR_APIS = {
    # vendor: (path, cursor parameter, items key, continuation key, "more" key or None)
    "polyai": ("/v3/acct-1/proj-1/conversations", "cursor", "conversations", "cursor", None),
    "elevenlabs": ("/v1/convai/conversations", "cursor", "conversations", "next_cursor", "has_more"),
    "replyful": ("/v1/conversations", "startingAfter", "data", "nextCursor", "hasMore"),
}


def _get(s: VendorSimulator, path: str, params: dict[str, str]) -> dict[str, Any]:
    headers = {s.auth_header: f"{s.auth_prefix}{s.token}"}
    response = requests.get(f"{s.url}{path}", params=params, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("vendor", list(CURSOR_APIS))
def test_empty_page_carries_a_fresh_cursor_to_the_same_position(sim, vendor):
    path, param, items, cont, more = CURSOR_APIS[vendor]
    s = sim(vendor, conversations=100)
    params = {"limit" if vendor != "elevenlabs" else "page_size": "10"}
    first = _get(s, path, params)
    token = first[cont]
    second = _get(s, path, {**params, param: token})
    s.faults = Faults(every={"empty": 1})
    for position in ({}, {param: token}):
        empty = _get(s, path, {**params, **position})
        assert empty[items] == []
        assert empty[cont] not in (None, "", token), "the token is new"
        assert more is None or empty[more] is True
        s.faults = Faults()
        resumed = _get(s, path, {**params, param: empty[cont]})
        assert resumed[items] == (second if position else first)[items], "and points at the same position"
        s.faults = Faults(every={"empty": 1})


@pytest.mark.parametrize(("vendor", "kind", "reason"), [
    ("anyreach", "empty", "a short (or empty) page is the end of an Anyreach list by the API's contract"),
    ("parrotmob", "empty", "a short (or empty) page is the end of a ParrotMob list"),
    ("parrotmob", "stuck", "the client computes the next offset itself"),
])
def test_a_vendor_fault_the_api_cannot_express_is_refused(sim, vendor, kind, reason):
    s = sim(vendor, conversations=10)
    refusal = re.escape(f"the {vendor} simulator cannot serve fault kinds ['{kind}']: {reason}")
    with pytest.raises(ValueError, match=refusal):
        s.faults = Faults(rate=0.5, kinds=("503", kind))
    with pytest.raises(ValueError, match="cannot serve fault kinds"):
        sim(vendor, conversations=10, faults=Faults(schedule={2: kind}))


def test_fault_settings_are_checked():
    with pytest.raises(ValueError, match="unknown fault kinds \\['504'\\]"):
        Faults(kinds=("503", "504"))
    with pytest.raises(ValueError, match="fail_kind='empty'; allowed: 429, 500"):
        Faults(fail_after=1, fail_kind="empty")
    with pytest.raises(ValueError, match="burst=0 must be at least 1"):
        Faults(burst=0)


UPDATED_FIELD = {"replyful": "updatedAt", "anyreach": "updated_at", "parrotmob": "updated_at"}


@pytest.mark.parametrize("vendor", ["polyai", "elevenlabs", "replyful", "anyreach", "parrotmob"])
def test_updates_and_inserts_never_move_a_past_created_window(sim, vendor):
    s = sim(vendor, conversations=300, span=6 * H, **({"environments": ["live"]} if vendor == "polyai" else {}))
    before = {h: s.ground_truth(DEFAULT_START + h * H, DEFAULT_START + (h + 1) * H) for h in range(6)}
    present = DEFAULT_START + timedelta(days=2)
    churn = Churn(present=present, inserts=1.0, updates=1.0, batch=20, seed=3)
    for _ in range(5):
        churn.apply(s)
    assert (churn.inserted, churn.updated) == (100, 100)
    assert {h: s.ground_truth(DEFAULT_START + h * H, DEFAULT_START + (h + 1) * H) for h in range(6)} == before
    assert len(s.ground_truth(present - H, present + H)) == 100  # the inserted ones, all at "now"
    if vendor in UPDATED_FIELD:
        moved = s.ground_truth(present - H, present + H, time_key="updated")
        assert len(set(moved)) >= 100  # inserted and updated ones alike now carry an update time of "now"


@pytest.mark.parametrize("vendor", ["replyful", "anyreach", "parrotmob"])
def test_updates_during_an_updated_window_walk_lose_nothing_and_repeat_nothing(sim, set_connection, vendor):
    """Ground truth for an ``updated`` window while conversations are updated during the walk: what was in the
    window at the start and was not updated meanwhile must be exported; what was updated meanwhile moved to
    "now" and may or may not be (it is in the window when the walk passes it, or not); nothing else; none twice.
    """
    s = sim(vendor, conversations=600, span=4 * H)
    set_connection(f"{vendor}_default", s.connection())
    start, end = DEFAULT_START + H, DEFAULT_START + 3 * H
    truth = set(s.ground_truth(start, end, time_key="updated"))
    present = DEFAULT_START + timedelta(days=2)
    updated: set[str] = set()

    class Recording(Churn):
        def apply(self, sim: VendorSimulator) -> None:
            before = {r[sim.id_field]: r[UPDATED_FIELD[vendor]] for r in sim.records}
            super().apply(sim)
            updated.update(i for i, r in ((r[sim.id_field], r) for r in sim.records)
                           if before.get(i) != r[UPDATED_FIELD[vendor]])

    s.churn = Recording(present=present, updates=1.0, batch=8, seed=5)
    hook = hook_class(vendor)(page_size=7, **FAST)
    got = [str(c[hook.id_field]) for c in hook.iter_conversations(start, end, time_key="updated")]
    assert len(got) == len(set(got)), "no conversation twice"
    assert truth - updated <= set(got), "nothing that stayed in the window is missing"
    assert set(got) <= truth, "nothing that was not in the window at the start"
    assert truth & updated, "the walk did see conversations of its window being updated"


# ---------------------------------------------------------------------------------------------- permanent failure


PERMANENT = [
    # vendor, fault every attempt gets, what the message says about it
    ("parrotmob", "503", "last error: HTTP 503 Service Unavailable"),
    ("anyreach", "reset", "last error: connection error (ChunkedEncodingError"),
    ("polyai", "slow", "last error: timeout (ReadTimeout) after (5.0, 0.3) s"),
    ("elevenlabs", "429", "last error: HTTP 429 Too Many Requests, code=rate_limit_exceeded"),
    ("replyful", "garbage", "last error: HTTP 200 with a body that is not valid JSON"),
]


@pytest.mark.parametrize(("vendor", "kind", "reason"), PERMANENT, ids=[p[0] for p in PERMANENT])
def test_retries_exhausted_fail_the_task_and_leave_no_partial_object(sim, set_connection, tmp_path, vendor, kind,
                                                                     reason):
    s = sim(vendor, conversations=300, span=6 * H,
            faults=Faults(fail_after=3, fail_kind=kind, retry_after="0.01", slow_seconds=0.6))
    set_connection("flaky", s.connection())
    op = ConversationsToObjectStorageOperator(
        task_id="export", conn_id="flaky", vendor=vendor, destination=f"file://{tmp_path}/",
        start=DEFAULT_START + 4 * H, end=DEFAULT_START + 5 * H, page_size=5, hook_params={**FAST, "max_attempts": 3},
    )
    with pytest.raises(RetriesExhaustedError) as err:
        op.execute({})
    message = str(err.value)
    assert f"request to {s.url}/" in message
    assert "failed after 3 attempts over" in message
    assert "(limits: 3 attempts, 300 s)" in message
    assert reason in message
    assert s.stats.ok_pages == 3, "three pages were delivered (and streamed) before the failure"
    assert s.stats.faults == {f"permanent {kind}": 3}
    assert [f for _, _, files in os.walk(tmp_path) for f in files] == [], "no object and no temporary file"


# ---------------------------------------------------------------------------------------------- no progress


def _export(vendor: str, conn: dict[str, Any], set_connection: Any, tmp_path: Path, **kwargs: Any) -> None:
    set_connection("stuck", conn)
    kwargs.setdefault("page_size", 5)
    ConversationsToObjectStorageOperator(
        task_id="export", conn_id="stuck", vendor=vendor, destination=f"file://{tmp_path}/",
        start=DEFAULT_START + 2 * H, end=DEFAULT_START + 4 * H, hook_params=FAST, **kwargs,
    ).execute({})


NO_PROGRESS = [
    # (id, vendor, simulator switches, connection switches, expected message, requests sent)
    ("polyai-v3-repeated-cursor", "polyai", {"faults": Faults(every={"stuck": 1})}, {},
     r"PolyAI pagination is not making progress: the request .*cursor=\S+ was already sent in this walk \(page 3\)",
     2),
    ("polyai-v1-offset-not-advancing", "polyai", {"faults": Faults(every={"stuck": 1})}, {"api_version": "v1"},
     r"PolyAI pagination is not making progress: the request .*&offset=0&start_time=\S+ was already sent in this "
     r"walk \(page 3\)", 2),
    ("polyai-v1-empty-page-same-offset", "polyai", {"faults": Faults(every={"empty": 1})}, {"api_version": "v1"},
     r"the request .*&offset=0&start_time=\S+ was already sent in this walk", 2),
    ("polyai-v3-endless-empty-pages", "polyai", {"faults": Faults(every={"empty": 1})}, {},
     "PolyAI returned 50 empty pages in a row while still announcing more; stopping", 50),
    ("elevenlabs-repeated-cursor", "elevenlabs", {"faults": Faults(every={"stuck": 1})}, {},
     r"ElevenLabs pagination is not making progress: the request .*cursor=\S+ was already sent", 2),
    ("elevenlabs-endless-empty-pages", "elevenlabs", {"faults": Faults(every={"empty": 1})}, {},
     "ElevenLabs returned 50 empty pages in a row while still announcing more", 50),
    ("replyful-repeated-cursor", "replyful", {"faults": Faults(every={"stuck": 1})}, {},
     r"Replyful pagination is not making progress: the request .*startingAfter=\S+ was already sent", 2),
    ("replyful-endless-empty-pages", "replyful", {"faults": Faults(every={"empty": 1})}, {},
     "Replyful returned 50 empty pages in a row while still announcing more", 50),
    ("anyreach-cursor-ignored", "anyreach", {"faults": Faults(every={"stuck": 1})}, {},
     r"Anyreach answered the probe cursor=\S+&created_after=\S+ with a conversation created at .*: it ignores its "
     "cursor", 2),
    ("anyreach-more-ties-than-a-page", "anyreach", {"tie_groups": [(DEFAULT_START + 3 * H, 1001)]}, {},
     "at least 1000 Anyreach conversations share created_at 2026-11-17T03:00:00.000000Z", None),
    ("parrotmob-inserts-outrun-the-walk", "parrotmob", {"inserts_per_request": 5}, {},
     "ParrotMob pagination is not making progress: 50 full pages in a row brought no conversation the walk had "
     "not read", None),
]


@pytest.mark.parametrize(("vendor", "switches", "conn", "message", "sent"), [p[1:] for p in NO_PROGRESS],
                         ids=[p[0] for p in NO_PROGRESS])
def test_a_window_without_progress_fails_loudly_within_bounded_requests(sim, set_connection, tmp_path, vendor,
                                                                        switches, conn, message, sent):
    s = sim(vendor, conversations=300, span=6 * H, **switches)
    with pytest.raises(PaginationError, match=message):
        _export(vendor, s.connection(**conn), set_connection, tmp_path)
    if sent is not None:
        assert s.stats.requests == sent
    elif vendor == "anyreach":
        # The pages down to the tie (each re-asks its frontier instant, so a page of 5 brings at least 4 new), one
        # probe, the group asked once at the largest page: then it stops.
        newer = len(s.ground_truth(DEFAULT_START + 3 * H + timedelta(microseconds=1), DEFAULT_START + 4 * H))
        assert s.stats.requests <= -(-newer // 4) + 4, (s.stats.requests, newer)
    else:
        # A page, the one-item seek probes past the conversations above the window, then 50 stalled pages.
        assert s.stats.requests <= 1 + 2 * 12 + 50, s.stats.requests
    assert [f for _, _, files in os.walk(tmp_path) for f in files] == []
