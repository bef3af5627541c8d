"""ElevenLabs hook against its simulator: newest-first cursor walks partition thousands of conversations exactly."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_conversations.exceptions import AuthenticationError, VendorAPIError
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START, generate
from airflow_provider_conversations.testing.elevenlabs import ElevenLabsSimulator
from tests.helpers import assert_exactly_once, walk_back_to_back

N = 3000
THREE_DAYS = DEFAULT_START + timedelta(days=3)
ID = "conversation_id"


@pytest.fixture(scope="module", params=["inclusive", "exclusive"])
def el_sim(request):
    with ElevenLabsSimulator(N, seed=5, bounds=request.param, max_seconds=600, log_requests=False) as s:
        yield s


@pytest.fixture
def el(el_sim, set_connection):
    set_connection("elevenlabs_default", el_sim.connection())
    return el_sim


def test_data_set_has_the_hard_cases(el):
    start = int(DEFAULT_START.timestamp())
    times = [r["start_time_unix_secs"] for r in el.records]
    assert len(times) == N
    assert all(start <= t < start + 3 * 86400 and isinstance(t, int) for t in times)
    assert sum(1 for t in times if t % 3600 == 0) > 250  # many exactly on window edges
    assert sum(1 for n in Counter(times).values() if n > 1) > 200  # many sharing a second
    statuses = Counter(r["status"] for r in el.records)
    assert set(statuses) == {"initiated", "in-progress", "processing", "done", "failed"}


@pytest.mark.parametrize("page_size", [1, 7, None])
def test_back_to_back_hours_partition_exactly(el, page_size):
    hook = ElevenLabsHook(page_size=page_size)
    got = walk_back_to_back(hook, DEFAULT_START, 72, id_field=ID)
    truth = el.ground_truth(DEFAULT_START, THREE_DAYS)
    assert len(truth) == N
    assert_exactly_once(got, truth)
    assert hook.stats.duplicates == 0  # keyset cursors never repeat, and the order never broke


def test_pages_are_newest_first_and_carry_cursors(el):
    hook = ElevenLabsHook(page_size=7)
    first = hook.get_json({"page_size": "7"})
    times = [c["start_time_unix_secs"] for c in first["conversations"]]
    assert times == sorted(times, reverse=True)
    assert first["has_more"] is True
    assert first["next_cursor"]
    second = hook.get_json({"page_size": "7", "cursor": first["next_cursor"]})
    assert second["conversations"][0]["start_time_unix_secs"] <= times[-1]
    assert not {c[ID] for c in first["conversations"]} & {c[ID] for c in second["conversations"]}


def test_sub_second_window_edges(el):
    hook = ElevenLabsHook()
    start = DEFAULT_START + timedelta(hours=5)
    edges = [start + timedelta(minutes=7 * i, microseconds=123457 * i) for i in range(40)]
    got: list[str] = []
    for a, b in itertools.pairwise(edges):
        got += [c[ID] for c in hook.iter_conversations(a, b)]
    truth = el.ground_truth(edges[0], edges[-1])
    assert len(truth) > 150
    assert_exactly_once(got, truth)


def _by(pred: Any, records: list[dict[str, Any]]) -> list[str]:
    return sorted(r[ID] for r in records if pred(r))


FILTER_CASES: list[tuple[dict[str, Any], Any]] = [
    ({"agent_id": "agent_2"}, lambda r: r["agent_id"] == "agent_2"),
    ({"call_successful": "failure"}, lambda r: r["call_successful"] == "failure"),
    ({"call_duration_min_secs": 600, "call_duration_max_secs": 900},
     lambda r: 600 <= r["call_duration_secs"] <= 900),
    ({"rating_min": 2, "rating_max": 3}, lambda r: r["rating"] in (2, 3)),
    ({"user_id": "user_7"}, lambda r: r["_user_id"] == "user_7"),
    ({"evaluation_params": ["resolved:success", "polite:failure"]},
     lambda r: r["_evaluation"] == {"resolved": "success", "polite": "failure"}),
    ({"data_collection_params": ["city:in:paris|delhi", "order_total:gte:250"]},
     lambda r: r["_collected"].get("city") in ("paris", "delhi")
     and r["_collected"].get("order_total", -1) >= 250),
    ({"data_collection_params": "email:missing"}, lambda r: "email" not in r["_collected"]),
    ({"data_collection_params": ["email:exists:", "city:neq:berlin"]},
     lambda r: "email" in r["_collected"] and r["_collected"].get("city") != "berlin"),
    ({"main_languages": ["de", "fr"]}, lambda r: r["main_language"] in ("de", "fr")),
    ({"conversation_initiation_source": "twilio"}, lambda r: r["conversation_initiation_source"] == "twilio"),
    ({"branch_id": "branch_1_1"}, lambda r: r["branch_id"] == "branch_1_1"),
    ({"topic_ids": ["sales", "onboarding"]}, lambda r: {"sales", "onboarding"} & set(r["_topics"])),
    ({"tag_ids": "vip"}, lambda r: "vip" in r["tag_ids"]),
    ({"exclude_statuses": ["done", "initiated"]}, lambda r: r["status"] not in ("done", "initiated")),
    ({"search": "user_12 talked"}, lambda r: r["_user_id"] == "user_12"),
]


@pytest.mark.parametrize(("filters", "pred"), FILTER_CASES, ids=[",".join(f) for f, _ in FILTER_CASES])
def test_filters_reach_the_server(el, filters, pred):
    got = [c[ID] for c in ElevenLabsHook().iter_conversations(DEFAULT_START, THREE_DAYS, filters=filters)]
    expected = _by(pred, el.records)
    assert expected, "the case must select something"
    assert len(expected) < N  # and must leave something out
    assert sorted(got) == expected
    assert el.ground_truth(DEFAULT_START, THREE_DAYS, **filters) == [r[ID] for r in el.records if pred(r)]


def test_summary_mode_include(el):
    hook = ElevenLabsHook(page_size=5)
    window = (DEFAULT_START, DEFAULT_START + timedelta(hours=1))
    plain = list(hook.iter_conversations(*window))
    rich = list(hook.iter_conversations(*window, filters={"summary_mode": "include"}))
    assert [c[ID] for c in plain] == [c[ID] for c in rich]
    assert all(c["transcript_summary"] is None for c in plain)
    by_id = {r[ID]: r for r in el.records}
    assert [c["transcript_summary"] for c in rich] == [el.summary(by_id[c[ID]]) for c in rich]
    assert all(" talked to " in c["transcript_summary"] for c in rich)


def test_finished_and_in_progress_filters_split_the_data(el):
    hook = ElevenLabsHook()
    finished = [c for c in hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=hook.finished_filters({}))]
    live_filters = hook.in_progress_filters({})
    assert live_filters is not None
    live = [c for c in hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=live_filters)]
    assert all(hook.is_finished(c) for c in finished)
    assert all(hook.is_in_progress(c) for c in live)
    assert 0 < len(live) < N / 10
    assert_exactly_once([c[ID] for c in finished + live], el.ground_truth(DEFAULT_START, THREE_DAYS))


def test_finish_all_settles_every_conversation(sim, set_connection):
    s = sim("elevenlabs", conversations=400, seed=2)
    set_connection("elevenlabs_default", s.connection())
    hook = ElevenLabsHook()
    live = hook.in_progress_filters({})
    assert len(list(hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=live))) > 5
    s.finish_all()  # type: ignore[attr-defined]
    assert list(hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=live)) == []
    assert len(list(hook.iter_conversations(DEFAULT_START, THREE_DAYS))) == 400


def test_conversations_added_mid_walk_never_duplicate_or_hide_older_ones(sim, set_connection):
    s = sim("elevenlabs", conversations=600, seed=4, span=timedelta(hours=1))
    set_connection("elevenlabs_default", s.connection())
    before = s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(hours=1))
    extra = generate(200, seed=99, span=timedelta(hours=1), precision=timedelta(seconds=1))
    for c in extra:
        c.extra["id"] = f"conv_new_{c.index:05d}"
    hook = ElevenLabsHook(page_size=50)
    got: list[str] = []
    for number, page in enumerate(hook.iter_pages(DEFAULT_START, DEFAULT_START + timedelta(hours=1))):
        got += [c[ID] for c in page]
        if number == 3:
            s.add(extra)  # type: ignore[attr-defined]
    assert len(got) == len(set(got))
    assert set(before) <= set(got)
    new = set(got) - set(before)
    assert new  # additions older than the cursor are served later in the same walk
    assert all(i.startswith("conv_new_") for i in new)


def test_wrong_key_and_server_side_validation(sim, set_connection):
    s = sim("elevenlabs", conversations=10)
    set_connection("elevenlabs_default", s.connection(token="wrong-token"))
    with pytest.raises(AuthenticationError) as err:
        list(ElevenLabsHook().iter_conversations(DEFAULT_START, DEFAULT_START + timedelta(hours=1)))
    assert "rejected the API key of connection 'elevenlabs_default'" in str(err.value)
    assert err.value.code == "invalid_api_key"
    ok, message = ElevenLabsHook().test_connection()
    assert ok is False
    assert "wrong-token" not in message
    set_connection("elevenlabs_default", s.connection())
    assert ElevenLabsHook().test_connection()[0] is True
    hook = ElevenLabsHook()
    for params, param in [({"page_size": "101"}, "page_size"), ({"page_size": "0"}, "page_size"),
                          ({"cursor": "%%%"}, "cursor"), ({"sort_direction": "up"}, "sort_direction"),
                          ({"text_only": "maybe"}, "text_only"),
                          ({"data_collection_params": "order_total:gt:lots"}, "data_collection_params"),
                          ({"data_collection_params": "order_total:gt:"}, "data_collection_params"),
                          ({"guardrail_types": "rude"}, "guardrail_types"),
                          ({"call_successful": "maybe"}, "call_successful"),
                          ({"exclude_statuses": "gone"}, "exclude_statuses"),
                          ({"data_collection_params": "a:exists:x"}, "data_collection_params"),
                          ({"call_start_after_unix": "1.5"}, "call_start_after_unix")]:
        with pytest.raises(VendorAPIError) as verr:
            hook.get_json(params)
        assert (verr.value.status, verr.value.param) == (422, param)
        assert verr.value.request_id


def test_region_field_is_carried_and_host_wins(el, set_connection):
    conn = el.connection(region="eu-residency")
    assert conn["extra"] == {"region": "eu-residency"}
    set_connection("elevenlabs_eu", conn)
    hook = ElevenLabsHook("elevenlabs_eu")
    assert hook.test_connection() == (True, f"Connected to ElevenLabs at {el.url}: the API key was accepted.")


def test_faults_are_retried_to_an_exact_result(sim, set_connection):
    from airflow_provider_conversations.testing.server import Faults

    s = sim("elevenlabs", conversations=3000, seed=11,
            faults=Faults(every={"429": 5, "503": 7, "truncated": 11, "reset": 13}))
    set_connection("elevenlabs_default", s.connection())
    hook = ElevenLabsHook(page_size=50, backoff=0.001, backoff_max=0.01)
    got = walk_back_to_back(hook, DEFAULT_START, 72, id_field=ID)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, THREE_DAYS))
    assert hook.stats.retries >= 20
