"""The simulators' copies of each vendor's constants agree with the hooks'.

The simulators never import the hooks (so a hook is never tested against itself): statuses, enums, page-size
limits, id fields and auth headers are copied on purpose. This is the one place that compares both sides, so
a change to one that is not made to the other fails here instead of making the suites test two different APIs.
The hook modules are imported here only; the auth header names are the ones VENDORS.md documents, because
how a hook builds its headers is internal to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import requests

from airflow_provider_conversations.hooks import anyreach as anyreach_hook
from airflow_provider_conversations.hooks import elevenlabs as elevenlabs_hook
from airflow_provider_conversations.hooks import hook_class
from airflow_provider_conversations.hooks import parrotmob as parrotmob_hook
from airflow_provider_conversations.hooks import polyai as polyai_hook
from airflow_provider_conversations.hooks import replyful as replyful_hook
from airflow_provider_conversations.testing import anyreach, elevenlabs, parrotmob, polyai, replyful, simulator_class
from airflow_provider_conversations.testing.server import VendorSimulator

VENDORS = ("parrotmob", "anyreach", "polyai", "elevenlabs", "replyful")

#: vendor -> (simulator module, hook module, the hook's constants the simulator copies).
COPIED: dict[str, tuple[ModuleType, ModuleType, tuple[str, ...]]] = {
    "replyful": (replyful, replyful_hook, ("STATUSES", "FINISHED", "SUPPORT_LEVELS")),
    "elevenlabs": (elevenlabs, elevenlabs_hook, ("IN_PROGRESS", "FINISHED", "STATUSES", "EVALUATION_RESULTS")),
    "polyai": (polyai, polyai_hook, ("CLIENT_ENVS", "API_VERSIONS")),
    "anyreach": (anyreach, anyreach_hook, ("MAX_LIMIT", "DIRECTIONS", "CHANNELS", "IN_PROGRESS", "FINISHED", "FIELDS")),
    "parrotmob": (parrotmob, parrotmob_hook, ("IN_PROGRESS", "FINISHED", "ANY_TERMINAL", "STATUSES")),
}
#: Where the simulator's copy has another name than the hook's constant.
RENAMED = {("elevenlabs", "EVALUATION_RESULTS"): "RESULTS", ("polyai", "API_VERSIONS"): "LIMITS"}
#: Groups whose order means nothing (the ParrotMob hook keeps them as sets).
UNORDERED = {("parrotmob", "IN_PROGRESS"), ("parrotmob", "FINISHED")}

#: The largest page each simulator serves (``None``: it enforces none) -- PolyAI's per API version.
SIMULATOR_MAX_PAGE: dict[str, int | None] = {
    "replyful": replyful.MAX_LIMIT,
    "elevenlabs": elevenlabs.MAX_PAGE_SIZE,
    "polyai": max(polyai.LIMITS.values()),
    "anyreach": anyreach.MAX_LIMIT,
    "parrotmob": None,  # ``limit`` is unbounded (0 even means everything): the hook's own cap must be served
}

#: vendor -> (header, value prefix before the key) as VENDORS.md documents them.
DOCUMENTED_AUTH = {
    "parrotmob": ("Authorization", "Bearer "),
    "anyreach": ("Authorization", "Bearer "),
    "polyai": ("x-api-key", ""),
    "elevenlabs": ("xi-api-key", ""),
    "replyful": ("Authorization", "Bearer "),
}

#: vendor -> (list path on the simulator, page-size parameter), for the requests below.
LIST = {
    "parrotmob": ("/accounts/me/conversations", "limit"),
    "anyreach": ("/core/conversations", "limit"),
    "polyai": ("/v1/acct-1/proj-1/conversations", "limit"),  # v1: the version with the hook's largest page
    "elevenlabs": ("/v1/convai/conversations", "page_size"),
    "replyful": ("/v1/conversations", "limit"),
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, VendorSimulator]]:
    """One simulator per vendor, with more conversations than the largest page (PolyAI's only live ones)."""
    options: dict[str, dict[str, Any]] = {"polyai": {"environments": ["live"]}}
    started = {v: simulator_class(v)(5100, max_seconds=120, log_requests=False, **options.get(v, {})).start()
               for v in VENDORS}
    try:
        yield started
    finally:
        for s in started.values():
            s.stop()


def _get(s: VendorSimulator, path: str, params: dict[str, str], headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{s.url}{path}", params=params, headers=headers, timeout=10)


def _auth(s: VendorSimulator) -> dict[str, str]:
    return {s.auth_header: f"{s.auth_prefix}{s.token}"}


@pytest.mark.parametrize(("vendor", "name"), [(v, n) for v, (_, _, names) in COPIED.items() for n in names])
def test_copied_constant_agrees_with_the_hook(vendor: str, name: str) -> None:
    sim_module, hook_module, _ = COPIED[vendor]
    copy, original = getattr(sim_module, RENAMED.get((vendor, name), name)), getattr(hook_module, name)
    if (vendor, name) in UNORDERED:
        copy, original = frozenset(copy), frozenset(original)
    assert copy == original, f"testing/{vendor}.py and hooks/{vendor}.py disagree on {name}"


def test_every_vendor_is_compared() -> None:
    assert set(COPIED) == set(VENDORS) == set(SIMULATOR_MAX_PAGE) == set(DOCUMENTED_AUTH)


def test_polyai_hook_pages_up_to_the_largest_version_limit() -> None:
    assert hook_class("polyai").max_page_size == max(polyai_hook.API_VERSIONS.values())


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_simulator_serves_the_hooks_largest_page_and_refuses_one_more(
        sims: dict[str, VendorSimulator], vendor: str) -> None:
    s, hook_max = sims[vendor], hook_class(vendor).max_page_size
    limit = SIMULATOR_MAX_PAGE[vendor]
    if limit is not None:
        assert limit == hook_max, f"the {vendor} simulator and hook disagree on the largest page"
    path, param = LIST[vendor]
    served = _get(s, path, {param: str(hook_max)}, _auth(s))
    assert served.status_code == 200, served.text
    body = served.json()
    items = body if isinstance(body, list) else body[{"polyai": "conversations", "elevenlabs": "conversations",
                                                      "replyful": "data"}[vendor]]
    assert len(items) == hook_max
    if limit is not None:
        assert _get(s, path, {param: str(hook_max + 1)}, _auth(s)).status_code == 422


@pytest.mark.parametrize("version", sorted(polyai_hook.API_VERSIONS))
def test_each_polyai_version_limit_is_the_hooks(sims: dict[str, VendorSimulator], version: str) -> None:
    s, limit = sims["polyai"], polyai_hook.API_VERSIONS[version]
    path = f"/{version}/acct-1/proj-1/conversations"
    assert _get(s, path, {"limit": str(limit)}, _auth(s)).status_code == 200
    assert _get(s, path, {"limit": str(limit + 1)}, _auth(s)).status_code == 422


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_simulator_checks_the_documented_auth_header(sims: dict[str, VendorSimulator], vendor: str) -> None:
    s = sims[vendor]
    header, prefix = DOCUMENTED_AUTH[vendor]
    assert (s.auth_header, s.auth_prefix) == (header, prefix)
    path, _ = LIST[vendor]
    assert _get(s, path, {}, {header: f"{prefix}{s.token}"}).status_code == 200
    assert _get(s, path, {}, {header: f"{prefix}not-{s.token}"}).status_code == 401
    assert _get(s, path, {}, {}).status_code == 401


def test_anyreach_personal_tokens_need_the_documented_org_header() -> None:
    with anyreach.AnyreachSimulator(10, token="pat_sim.personal", org_id="org_7", max_seconds=60) as s:
        assert s.org_header == "X-Anyreach-Org"
        path, _ = LIST["anyreach"]
        assert _get(s, path, {}, {**_auth(s), "X-Anyreach-Org": "org_7"}).status_code == 200
        assert _get(s, path, {}, _auth(s)).status_code == 401


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_simulator_names_the_id_field_as_the_hook_does(sims: dict[str, VendorSimulator], vendor: str) -> None:
    s = sims[vendor]
    assert s.id_field == hook_class(vendor).id_field
    assert all(s.id_field in r for r in s.records)
