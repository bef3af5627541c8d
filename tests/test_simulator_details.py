"""The simulators' detail endpoints: bodies per vendor, 404/403, vanishing conversations, and that faults, the
rate limit and the request statistics cover detail requests as they cover list pages."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_conversations.testing import simulator
from airflow_provider_conversations.testing.anyreach import SCOPE, AnyreachSimulator
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.elevenlabs import ElevenLabsSimulator
from airflow_provider_conversations.testing.server import Faults, SimRequest, SimResponse, VendorSimulator

EL_HEADERS = {"xi-api-key": ElevenLabsSimulator.default_token}


def _get(sim: VendorSimulator, path: str, token: str | None = None, **params: Any) -> requests.Response:
    headers = {sim.auth_header: f"{sim.auth_prefix}{sim.token if token is None else token}"}
    return requests.get(sim.url + path, params=params, headers=headers, timeout=10)


# ---------------------------------------------------------------------- ElevenLabs


def test_elevenlabs_detail_is_the_ground_truth_with_a_realistic_transcript(sim):
    s = sim("elevenlabs", conversations=60, seed=3)
    for r in s.records:
        cid = r["conversation_id"]
        answer = _get(s, f"/v1/convai/conversations/{cid}")
        assert answer.status_code == 200
        body = answer.json()
        assert body == s.detail(cid)
        assert body["conversation_id"] == cid
        assert body["metadata"]["start_time_unix_secs"] == r["start_time_unix_secs"]
        transcript = body["transcript"]
        assert len(transcript) == r["message_count"]
        assert [t["role"] for t in transcript] == ["agent" if i % 2 == 0 else "user" for i in range(len(transcript))]
        offsets = [t["time_in_call_secs"] for t in transcript]
        assert offsets == sorted(offsets)
        assert offsets[-1] <= r["call_duration_secs"]
        assert all(t["message"] for t in transcript)
        assert sum(t["role"] == "user" for t in transcript) == r["user_message_count"]
        assert (body["analysis"] is None) == (r["status"] in ("initiated", "in-progress", "processing"))
        assert "otlp_traces" not in body
        if r["message_count"] >= 10:
            assert len(answer.content) > 2000  # a few KB, like the vendor's
    # The same id gets the same transcript from another simulator with the same data (no per-process hash).
    other = ElevenLabsSimulator(60, seed=3)
    assert all(other.detail(r["conversation_id"]) == s.detail(r["conversation_id"]) for r in s.records)


def test_elevenlabs_detail_formats_and_errors(sim):
    s = sim("elevenlabs", conversations=5, seed=1)
    cid = s.records[0]["conversation_id"]
    otel = _get(s, f"/v1/convai/conversations/{cid}", format="opentelemetry").json()
    assert otel["otlp_traces"]["resourceSpans"]
    assert {k: v for k, v in otel.items() if k != "otlp_traces"} == _get(s, f"/v1/convai/conversations/{cid}",
                                                                          format="json").json()
    bad = _get(s, f"/v1/convai/conversations/{cid}", format="xml")
    assert bad.status_code == 422
    assert bad.json()["detail"]["param"] == "format"
    missing = _get(s, "/v1/convai/conversations/conv_nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == {"type": "not_found", "code": "conversation_not_found",
                                        "message": "Conversation conv_nope not found",
                                        "request_id": missing.json()["detail"]["request_id"], "param": None}
    assert _get(s, f"/v1/convai/conversations/{cid}", token="wrong").status_code == 401
    assert s.detail("conv_nope") is None


# ---------------------------------------------------------------------- Replyful


def test_replyful_detail_is_the_listed_conversation_plus_its_messages_ascending(sim):
    s = sim("replyful", conversations=80, seed=2)
    served = 0
    for r in s.records:
        answer = _get(s, f"/v1/conversations/{r['id']}")
        if r["status"] == "archived":
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "conversation_not_found"
            assert answer.json()["error"]["type"] == "invalid_request_error"
            assert s.detail(r["id"]) is None
            continue
        served += 1
        body = answer.json()
        assert body == s.detail(r["id"])
        assert {k: v for k, v in body.items() if k != "messages"} == r
        messages = body["messages"]
        assert len(messages) == int(r["lastMessagePreview"].split()[0])
        stamps = [datetime.fromisoformat(m["createdAt"]) for m in messages]
        assert stamps == sorted(stamps)
        assert stamps[0] == datetime.fromisoformat(r["createdAt"])
        assert stamps[-1] <= datetime.fromisoformat(r["updatedAt"])
        assert all(m["createdAt"].endswith("Z") and len(m["createdAt"]) == 24 for m in messages)
        assert {m["role"] for m in messages} <= {"agent", "contact"}
        assert all(m["conversationId"] == r["id"] and m["object"] == "message" and m["body"] for m in messages)
        assert len({m["id"] for m in messages}) == len(messages)
    assert 0 < served < 80  # some archived ones among them
    assert _get(s, "/v1/conversations/conv_missing").status_code == 404


# ---------------------------------------------------------------------- Anyreach


def test_anyreach_detail_with_and_without_the_sensitive_scope(sim):
    scoped, plain = "ak_sim.scoped", "ak_sim.plain"
    s = sim("anyreach", conversations=30, seed=4, token=scoped, tokens=[plain], read_sensitive=[scoped])
    listed = _get(s, "/core/conversations", limit="1000").json()
    assert len(listed) == 30
    assert not any("conversation" in c or "recording_details" in c for c in listed)
    for item in listed:
        full = _get(s, f"/core/conversations/{item['id']}").json()
        assert full == s.detail(item["id"])
        assert {k: v for k, v in full.items() if k not in ("conversation", "recording_details")} == item
        turns = full["conversation"]["turns"]
        assert len(turns) == 2 * item["user_turn_count"]
        assert [t["timestamp"] for t in turns] == sorted(t["timestamp"] for t in turns)
        assert full["recording_details"]["recording_url"].startswith("https://")
        reduced = _get(s, f"/core/conversations/{item['id']}", token=plain).json()
        assert reduced == item == s.detail(item["id"], scoped=False)
    assert _get(s, "/core/conversations/cnv_missing").status_code == 404
    assert _get(s, "/core/conversations/cnv_missing").json() == {"detail": "Conversation not found"}


def test_anyreach_can_refuse_details_to_tokens_without_the_scope(sim):
    s = sim("anyreach", conversations=3, read_sensitive=False, missing_scope="refuse")
    answer = _get(s, f"/core/conversations/{s.records[0]['id']}")
    assert answer.status_code == 403
    assert answer.json() == {"detail": f"Token is missing required scope: {SCOPE}"}
    assert _get(s, "/core/conversations").status_code == 200  # the list itself is not refused
    with pytest.raises(ValueError, match="missing_scope='never'; allowed: 'omit', 'refuse'"):
        AnyreachSimulator(1, missing_scope="never")


# ---------------------------------------------------------------------- PolyAI and ParrotMob


def test_polyai_lists_realistic_turns_unless_transcripts_are_off(sim):
    s = sim("polyai", conversations=40, seed=6, environments=["live"])
    page = _get(s, "/v3/acct-1/proj-1/conversations", limit="100").json()["conversations"]
    assert len(page) == 40
    for c in page:
        assert c == s.detail(c["id"])
        turns = c["turns"]
        assert len(turns) == c["num_turns"]
        assert set(turns[0]) == {"user_input", "user_input_datetime", "agent_response", "agent_response_datetime",
                                 "latency", "intents", "turn_number"}
        assert turns[0]["user_input"] == ""  # the agent greets first
        assert turns[0]["agent_response"]
        assert all(t["user_input"] and t["latency"] > 0 for t in turns[1:])
        assert all(t["user_input_datetime"] < t["agent_response_datetime"] for t in turns[1:])
    off = sim("polyai", conversations=40, seed=6, environments=["live"], transcripts=False)
    bare = _get(off, "/v3/acct-1/proj-1/conversations", limit="100").json()["conversations"]
    assert [c["turns"] for c in bare] == [[]] * 40
    assert [{k: v for k, v in c.items() if k != "turns"} for c in bare] == [
        {k: v for k, v in c.items() if k != "turns"} for c in page]


def test_parrotmob_has_no_detail_endpoint(sim):
    s = sim("parrotmob", conversations=3)
    cid = s.records[0][s.id_field]
    assert _get(s, f"/accounts/me/conversations/{cid}").status_code == 404
    assert s.stats.detail_requests == 0
    with pytest.raises(ValueError, match="vanish_share: the parrotmob simulator serves no detail endpoint"):
        simulator("parrotmob", conversations=1, vanish_share=0.5)
    with pytest.raises(NotImplementedError, match="parrotmob simulator serves no detail endpoint"):
        s.detail(cid)


# ---------------------------------------------------------------------- switches shared by every vendor

DETAIL_VENDORS = {"elevenlabs": "/v1/convai/conversations/{}", "replyful": "/v1/conversations/{}",
                  "anyreach": "/core/conversations/{}"}


@pytest.mark.parametrize("vendor", sorted(DETAIL_VENDORS))
def test_vanish_share_makes_the_same_listed_conversations_answer_404(sim, vendor):
    s = sim(vendor, conversations=200, seed=8, vanish_share=0.25, vanish_seed=1)
    ids = [r[s.id_field] for r in s.records if r.get("status") != "archived"]
    gone = {i for i in ids if _get(s, DETAIL_VENDORS[vendor].format(i)).status_code == 404}
    assert gone == {i for i in ids if s.vanished(i)} == {i for i in ids if s.detail(i) is None}
    assert 0.15 * len(ids) < len(gone) < 0.35 * len(ids)
    again = simulator(vendor, conversations=200, seed=8, vanish_share=0.25, vanish_seed=1)
    assert {i for i in ids if again.vanished(i)} == gone
    other = simulator(vendor, conversations=200, seed=8, vanish_share=0.25, vanish_seed=2)
    assert {i for i in ids if other.vanished(i)} != gone
    assert len(s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(days=3))) == 200  # all still listed
    with pytest.raises(ValueError, match=r"vanish_share=1\.5 must be between 0 and 1"):
        simulator(vendor, conversations=1, vanish_share=1.5)


def test_faults_apply_to_details_and_are_counted():
    s = ElevenLabsSimulator(10, seed=1, faults=Faults(schedule={2: "503", 3: "reset", 4: "429", 5: "empty"}))
    with s:
        cid = s.records[0]["conversation_id"]
        path = f"/v1/convai/conversations/{cid}"
        assert _get(s, "/v1/convai/conversations").status_code == 200  # request 1: a list page
        assert _get(s, path).status_code == 503
        with pytest.raises(requests.exceptions.RequestException):
            _get(s, path).json()
        limited = _get(s, path)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "0")
        assert _get(s, path).json() == s.detail(cid)  # "empty" rewrites a page's continuation, not a detail
        assert s.stats.faults == {"503": 1, "reset": 1, "429": 1}
        assert (s.stats.requests, s.stats.detail_requests, s.stats.ok_details, s.stats.ok_pages) == (5, 4, 1, 1)


def test_details_count_against_the_rate_limit():
    with simulator("replyful", conversations=10, seed=1, rate_limit=(3, 600)) as s:
        ids = [r["id"] for r in s.records if r["status"] != "archived"]
        assert _get(s, "/v1/conversations").status_code == 200
        assert _get(s, f"/v1/conversations/{ids[0]}").headers["RateLimit-Remaining"] == "1"
        assert _get(s, f"/v1/conversations/{ids[1]}").status_code == 200
        refused = _get(s, f"/v1/conversations/{ids[2]}")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert s.stats.throttled == 1
        assert s.stats.detail_requests == 3


class _GatedSimulator(ElevenLabsSimulator):
    """Holds every detail request until ``gate`` lets ``parties`` of them through together, so the most in
    flight at once is known exactly, without timing anything."""

    gate: threading.Barrier | None = None

    def handle_detail(self, conversation_id: str, request: SimRequest) -> SimResponse:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        return super().handle_detail(conversation_id, request)


def test_detail_concurrency_statistics():
    with _GatedSimulator(20, seed=2, log_requests=False) as s:
        ids = [r["conversation_id"] for r in s.records]
        for cid in ids[:3]:  # one after the other: never more than one in flight
            assert _get(s, f"/v1/convai/conversations/{cid}").status_code == 200
        assert (s.stats.max_details_in_flight, s.stats.details_in_flight) == (1, 0)
        s.gate = threading.Barrier(5)
        with ThreadPoolExecutor(5) as pool:
            codes = list(pool.map(lambda cid: _get(s, f"/v1/convai/conversations/{cid}").status_code, ids[5:10]))
        assert codes == [200] * 5
        assert (s.stats.max_details_in_flight, s.stats.details_in_flight) == (5, 0)
        assert (s.stats.detail_requests, s.stats.ok_details, s.stats.ok_pages) == (8, 8, 0)
        s.gate = None
        assert _get(s, "/v1/convai/conversations").status_code == 200
        assert (s.stats.detail_requests, s.stats.ok_pages) == (8, 1)


def test_command_line_switches_reach_the_simulator(monkeypatch, capsys):
    from airflow_provider_conversations.testing import __main__ as cli

    made: list[VendorSimulator] = []

    def make(vendor: str, **kwargs: Any) -> VendorSimulator:
        made.append(simulator(vendor, **{**kwargs, "max_seconds": 0.05}))
        return made[-1]

    monkeypatch.setattr(cli, "simulator", make)
    assert cli.main(["--vendor", "replyful", "--conversations", "5", "--latency-ms", "50", "--vanish-share", "0.1",
                     "--vanish-seed", "3", "--max-seconds", "0.05"]) == 0
    (s,) = made
    assert (s.latency_ms, s.vanish_share, s.vanish_seed) == (50.0, 0.1, 3)
    assert '"vendor": "replyful"' in capsys.readouterr().out
