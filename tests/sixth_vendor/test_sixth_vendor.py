"""A sixth vendor, end to end, with no edit in the package: Chatterbox's hook registered from outside it
(``hooks.registry.register``, for these tests only), walked against its own simulator, exported by the operator
and waited on by the sensor, and the proof that the package does not know it."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from airflow_provider_conversations.catalog import CONN_TYPES
from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, PaginationError
from airflow_provider_conversations.hooks import hook_class, hook_for_connection, validate_filters
from airflow_provider_conversations.hooks.registry import conn_types, register
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.sensors.conversations import ConversationsSensor
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import FAULT_KINDS, Churn
from tests.helpers import assert_exactly_once, walk_back_to_back
from tests.sixth_vendor.hook import ChatterboxHook
from tests.sixth_vendor.simulator import ChatterboxSimulator

HOURS = 6
H0, H1, END = DEFAULT_START, DEFAULT_START + timedelta(hours=1), DEFAULT_START + timedelta(hours=HOURS)
FAST = {"backoff": 0.001, "backoff_max": 0.002}
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_conversations"
#: A hook's declaration of its connection type, as a class attribute at the start of a line.
DECLARES = re.compile(r"^\s*conn_type\s*=\s*['\"]chatterbox['\"]", re.MULTILINE)


@pytest.fixture
def registered() -> Iterator[type[ChatterboxHook]]:
    """The registry serves ``chatterbox`` with the hook for this test only."""
    with register(ChatterboxHook) as cls:
        yield cls


@pytest.fixture
def start_sim(set_connection: Any, registered: Any) -> Iterator[Any]:
    """``start_sim(**options)``: a running Chatterbox simulator behind ``chatterbox_default``, stopped afterwards."""
    started: list[ChatterboxSimulator] = []

    def start(**options: Any) -> ChatterboxSimulator:
        options.setdefault("conversations", 900)
        options.setdefault("span", timedelta(hours=HOURS))
        s = ChatterboxSimulator(max_seconds=300, **options).start()
        started.append(s)
        set_connection("chatterbox_default", s.connection())
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def chatter(start_sim: Any) -> ChatterboxSimulator:
    sim: ChatterboxSimulator = start_sim()
    return sim


def hook(**kwargs: Any) -> Any:
    return hook_for_connection("chatterbox_default", **kwargs)


# ---------------------------------------------------------------------------------------------- the hook


@pytest.mark.parametrize("time_key", ["created", "updated"])
def test_back_to_back_windows_export_every_conversation_exactly_once(chatter, time_key):
    h = hook(page_size=7)
    assert type(h) is ChatterboxHook
    got = walk_back_to_back(h, H0, HOURS, id_field="uid", time_key=time_key)
    assert_exactly_once(got, chatter.ground_truth(H0, END, time_key=time_key))
    assert len(got) > 500
    assert h.stats.fetched == h.stats.yielded == len(got)  # exact inclusive bounds: nothing fetched to be cut
    field = {"created": "opened_at", "updated": "last_activity_at"}[time_key]
    first = chatter.requests[0].query
    assert (first["sort_by"], first["since"], first["until"]) == (
        [field], ["2026-11-17T00:00:00Z"], ["2026-11-17T00:59:59Z"])


def test_filters_reach_the_simulator_and_parallel_sub_windows_agree(chatter):
    filters = {"phase": "wrapped", "label": ["vip", "bug"], "min_messages": 5, "max_messages": 30}
    truth = chatter.ground_truth(H0, END, **filters)
    assert 50 < len(truth) < len(chatter.ground_truth(H0, END))
    sequential = [c["uid"] for c in hook(page_size=20).iter_conversations(H0, END, filters=filters)]
    assert sequential == truth  # oldest first, as the simulator keeps them
    parallel = [c["uid"] for c in hook(page_size=20).iter_conversations(H0, END, filters=filters, max_parallel=3)]
    assert sorted(parallel) == sorted(truth)
    assert chatter.requests[-1].query["label"] == ["vip", "bug"]


def test_continuation_faults_are_followed_or_refused(start_sim):
    s = start_sim(faults=Faults(every={"empty": 3}))
    assert_exactly_once(walk_back_to_back(hook(page_size=10), H0, HOURS, id_field="uid"), s.ground_truth(H0, END))
    assert s.stats.faults["empty"] > 10
    start_sim(faults=Faults(schedule={2: "stuck"}))
    with pytest.raises(PaginationError, match=r"^Chatterbox pagination is not making progress: the request "):
        list(hook(page_size=10).iter_conversations(H0, H1))


def test_generic_faults_and_churn_do_not_lose_or_repeat_a_conversation(start_sim):
    churn = Churn(present=END + timedelta(hours=1), inserts=0.3, updates=0.3, batch=3, seed=2)
    s = start_sim(faults=Faults(rate=0.2, kinds=tuple(k for k in FAULT_KINDS if k != "slow"), seed=6), churn=churn)
    got = walk_back_to_back(hook(page_size=25, **FAST, max_attempts=8), H0, HOURS, id_field="uid")
    # Inserted conversations were opened after END, and updates never move opened_at: the truth stood still.
    assert_exactly_once(got, s.ground_truth(H0, END))
    assert sum(s.stats.faults.values()) > 5
    assert churn.inserted > 30
    assert churn.updated > 30


@pytest.mark.parametrize(("filters", "message"), [
    ({"phase": "done"}, "Chatterbox filter 'phase' got 'done'; allowed: one of 'live', 'wrapped'"),
    ({"colour": "red"}, "unknown Chatterbox filter 'colour'; allowed filters: label, max_messages, min_messages, "
                        "phase. To send a query parameter this provider does not know yet, pass it in extra_params"),
    ({"page_token": "abc"}, "Chatterbox filter 'page_token' cannot be passed in filters: the hook pages; it is not a "
                            "filter"),
    ({"until": "2026-11-17T01:00:00Z"}, "Chatterbox filter 'until' cannot be passed in filters: the hook sets it "
                                        "from the window and time_key; pass start/end instead"),
    ({"min_messages": 9, "max_messages": 3}, "Chatterbox filter 'min_messages'=9 is greater than 'max_messages'=3; "
                                             "the range would be empty"),
    ({"min_messages": 0}, "Chatterbox filter 'min_messages' got 0 (out of range); allowed: an integer >= 1"),
    ({"label": []}, "Chatterbox filter 'label' got [] (an empty list); allowed: a non-empty string, or a list of "
                    "such values"),
])
def test_bad_filters_fail_before_any_request(chatter, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        hook().iter_conversations(H0, H1, filters=filters)
    assert str(err.value) == message
    with pytest.raises(InvalidFilterError) as err:
        validate_filters("chatterbox", filters)  # what the operators run when the DAG is parsed
    assert str(err.value) == message
    with pytest.raises(InvalidFilterError) as err:
        ConversationsToObjectStorageOperator(task_id="export", conn_id="chatterbox_default", vendor="chatterbox",
                                             destination="file:///tmp/never/", filters=filters)
    assert str(err.value) == f"ConversationsToObjectStorageOperator 'export': {message}"
    assert chatter.stats.requests == 0


def test_the_simulator_refuses_what_the_api_does_in_its_own_error_body(chatter):
    url = f"{chatter.url}/v2/workspaces/ws-main/conversations"
    key = {"X-Chatterbox-Key": chatter.token}
    answer = requests.get(url, params={"colour": "red"}, headers=key, timeout=10)
    assert answer.status_code == 422
    assert answer.json() == {"errors": {"code": "unknown_parameter", "detail": "colour is not a parameter of this "
                                        "endpoint", "param": "colour", "request_id": "cbx-req-000001"}}
    for params, param in (({"page_size": "251"}, "page_size"), ({"since": "yesterday"}, "since"),
                          ({"phase": "done"}, "phase"), ({"page_token": "bogus"}, "page_token"),
                          ({"sort_by": "opened_at", "page_token": ["a", "b"]}, "page_token")):
        refused = requests.get(url, params=params, headers=key, timeout=10)
        assert (refused.status_code, refused.json()["errors"]["param"]) == (422, param), params
    assert requests.get(url, timeout=10).json()["errors"]["code"] == "missing_api_key"
    assert requests.get(url.replace("ws-main", "ws-other"), headers=key, timeout=10).status_code == 404


def test_connection_test_and_connection_errors(chatter, set_connection):
    assert hook().test_connection() == (True, f"Connected to Chatterbox at {chatter.url}: the API key was accepted.")
    assert chatter.requests[-1].query == {"page_size": ["1"], "sort_by": ["opened_at"]}
    set_connection("chatterbox_default", chatter.connection(token="cbx-wrong"))
    ok, message = hook().test_connection()
    assert not ok
    assert re.fullmatch(r"Chatterbox connection test failed: Chatterbox rejected the API key of connection "
                        r"'chatterbox_default': HTTP 401 Unauthorized, code=invalid_api_key, "
                        r"message='Invalid API key', request_id=cbx-req-\d{6}\. Check the key in the connection's "
                        r"Password field \(and its scopes\)\.", message), message
    set_connection("chatterbox_default", {**chatter.connection(), "extra": {}})
    with pytest.raises(ConfigurationError) as err:
        list(hook().iter_conversations(H0, H1))
    assert str(err.value) == ("Chatterbox connection 'chatterbox_default' has no workspace: set it in the connection "
                              "form (it is part of the conversations endpoint's path)")
    set_connection("chatterbox_default", chatter.connection(workspace=".."))
    with pytest.raises(ConfigurationError, match=r"has workspace='\.\.'; expected an id, not '\.' or '\.\.'"):
        hook()


# ---------------------------------------------------------------------------------------------- operator, sensor


def test_the_operator_exports_a_window_holding_exactly_the_ground_truth(chatter, tmp_path):
    op = ConversationsToObjectStorageOperator(task_id="export", conn_id="chatterbox_default", vendor="chatterbox",
                                              destination=f"file://{tmp_path}/", page_size=30, hook_params=FAST)
    manifest = op.execute({"data_interval_start": H1, "data_interval_end": H1 + timedelta(hours=1)})
    path = Path(manifest["uri"].removeprefix("file://"))
    assert path.is_relative_to(tmp_path / "vendor=chatterbox" / "conn_id=chatterbox_default")
    records = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    truth = chatter.ground_truth(H1, H1 + timedelta(hours=1))
    assert [r["uid"] for r in records] == truth
    by_uid = {r["uid"]: r for r in chatter.records}
    assert all(r == by_uid[r["uid"]] for r in records)
    assert (manifest["vendor"], manifest["count"], manifest["duplicates"]) == ("chatterbox", len(truth), 0)


def test_the_normalized_export_reads_the_declared_fields(chatter):
    from airflow_provider_conversations.output.records import normalize

    record = chatter.records[0]
    assert normalize(hook(), record) == {
        "vendor": "chatterbox", "id": record["uid"], "created_at": record["opened_at"],
        "updated_at": record["last_activity_at"], "status": record["state"],
        "finished": record["state"] in ("closed", "abandoned"), "channel": record["channel"],
        "duration_seconds": float(record["talk_seconds"]), "raw": record,
    }


def test_the_settled_sensor_waits_until_every_conversation_is_finished(chatter):
    context = {"data_interval_start": H0, "data_interval_end": END}
    truth = chatter.ground_truth(H0, END)
    live = [r["uid"] for r in chatter.records if r["uid"] in set(truth) and r["state"] in ("open", "on_hold")]
    assert live
    task = ConversationsSensor(task_id="wait", conn_id="chatterbox_default", vendor="chatterbox", settled=True,
                               min_count=len(truth), hook_params=FAST)
    assert not task.poke(context)
    assert chatter.requests[-1].query["phase"] == ["live"]  # asked the server for live ones only
    chatter.finish_all()
    done = task.poke(context)
    assert done
    assert {k: done.xcom_value[k] for k in ("vendor", "count", "in_progress", "settled", "checks")} == {
        "vendor": "chatterbox", "count": len(truth), "in_progress": 0, "settled": True, "checks": 2}


# ---------------------------------------------------------------------------------------------- the claim


def test_the_package_does_not_know_the_sixth_vendor():
    mentions = [p.relative_to(ROOT) for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                and b"chatterbox" in p.read_bytes().lower()]
    assert mentions == []
    tracked = [p for top in ("airflow_provider_conversations", "tests", "tools", "dags_examples", "benchmarks")
               for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts]
    declaring = [p.relative_to(ROOT).as_posix() for p in tracked if DECLARES.search(p.read_text())]
    assert declaring == ["tests/sixth_vendor/hook.py"]
    assert ChatterboxHook.__module__ == "tests.sixth_vendor.hook"


def test_outside_the_registration_the_registry_serves_only_the_built_in_vendors():
    assert conn_types() == CONN_TYPES
    assert "chatterbox" not in CONN_TYPES
    with pytest.raises(ConfigurationError) as err:
        hook_class("chatterbox")
    assert str(err.value) == ("connection type 'chatterbox' is not a conversations vendor; allowed: "
                              f"{', '.join(CONN_TYPES)}")
    with register(ChatterboxHook):
        assert conn_types() == (*CONN_TYPES, "chatterbox")
        assert hook_class("chatterbox") is ChatterboxHook
    assert conn_types() == CONN_TYPES
