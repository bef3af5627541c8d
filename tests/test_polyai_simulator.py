"""PolyAI hook against its simulator: consecutive windows partition thousands of conversations exactly."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from airflow_provider_conversations.exceptions import AuthenticationError, VendorAPIError
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tests.helpers import assert_exactly_once, walk_back_to_back

N = 4000


@pytest.fixture(scope="module")
def polyai_sim():
    from airflow_provider_conversations.testing.polyai import PolyAISimulator

    with PolyAISimulator(N, seed=7, max_seconds=600, log_requests=False) as s:
        yield s


def edge_count(sim) -> int:
    return sum(1 for r in sim.records if r["started_at"].endswith(":00:00.000000Z"))


@pytest.mark.parametrize("api_version", ["v3", "v1"])
@pytest.mark.parametrize("page_size", [1, 7, None])
def test_back_to_back_hours_partition_exactly(polyai_sim, set_connection, api_version, page_size):
    set_connection("polyai_default", polyai_sim.connection(api_version=api_version))
    assert edge_count(polyai_sim) > 300  # many conversations sit exactly on window edges
    hook = PolyAIHook(page_size=page_size)
    got = walk_back_to_back(hook, DEFAULT_START, 72)
    truth = polyai_sim.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(days=3))
    assert len(truth) > 2000
    assert_exactly_once(got, truth)


@pytest.mark.parametrize("bounds", ["inclusive", "exclusive"])
def test_exact_whatever_the_server_bound_semantics(sim, set_connection, bounds):
    s = sim("polyai", conversations=3000, seed=3, bounds=bounds)
    set_connection("polyai_default", s.connection())
    got = walk_back_to_back(PolyAIHook(page_size=50), DEFAULT_START, 72)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(days=3)))


def test_sub_second_window_edges(polyai_sim, set_connection):
    set_connection("polyai_default", polyai_sim.connection())
    hook = PolyAIHook()
    start = DEFAULT_START + timedelta(hours=5)
    edges = [start + timedelta(minutes=7 * i, microseconds=123457 * i) for i in range(40)]
    got: list[str] = []
    for a, b in itertools.pairwise(edges):
        got += [c["id"] for c in hook.iter_conversations(a, b)]
    assert_exactly_once(got, polyai_sim.ground_truth(edges[0], edges[-1]))


def test_filters_reach_the_server(polyai_sim, set_connection):
    set_connection("polyai_default", polyai_sim.connection())
    start, end = DEFAULT_START, DEFAULT_START + timedelta(days=3)
    got = list(PolyAIHook().iter_conversations(start, end, filters={"variant_id": "var-2", "in_progress": False,
                                                                    "channel": ["voice"]}))
    truth = [r["id"] for r in polyai_sim.records if r["environment"] == "live" and r["variant_id"] == "var-2"
             and not r["in_progress"] and r["channel"] == "voice"]
    assert sorted(c["id"] for c in got) == sorted(truth)
    assert truth


def test_wrong_key_and_server_side_validation(sim, set_connection):
    s = sim("polyai", conversations=10)
    set_connection("polyai_default", s.connection(token="wrong-token"))
    with pytest.raises(AuthenticationError, match="'polyai_default'"):
        list(PolyAIHook().iter_conversations(DEFAULT_START, DEFAULT_START + timedelta(hours=1)))
    assert PolyAIHook().test_connection()[0] is False
    set_connection("polyai_default", s.connection())
    assert PolyAIHook().test_connection()[0] is True
    # the simulator enforces the vendor's page-size limit with a FastAPI 422
    hook = PolyAIHook()
    with pytest.raises(VendorAPIError) as err:
        hook.get_json({"limit": "5001"})
    assert err.value.status == 422
    assert err.value.param == "limit"


def test_faults_are_retried_to_an_exact_result(sim, set_connection):
    from airflow_provider_conversations.testing.server import Faults

    s = sim("polyai", conversations=3000, seed=11,
            faults=Faults(every={"429": 5, "503": 7, "truncated": 11, "reset": 13}))
    set_connection("polyai_default", s.connection())
    hook = PolyAIHook(page_size=100, backoff=0.001, backoff_max=0.01)
    got = walk_back_to_back(hook, DEFAULT_START, 72)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(days=3)))
    assert hook.stats.retries >= 20
