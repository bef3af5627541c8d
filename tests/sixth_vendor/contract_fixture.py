"""Chatterbox in the contract suite (found by ``tests/contract/all_vendors.py``), written out by hand from its API
like the built-in vendors' fixtures: never computed with the hook or the simulator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.contract.vendors import HasMore, Refusal, Vendor
from tests.sixth_vendor.hook import ChatterboxHook


def _conversation(i: int, t: datetime) -> dict[str, Any]:
    at = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"uid": f"cbx-{i}", "state": "closed", "opened_at": at, "last_activity_at": at, "channel": "chat",
            "messages": 4, "talk_seconds": 30, "labels": []}


def _page(items: list[dict[str, Any]], after: Any, more: bool) -> Any:
    return {"results": items, "has_more": more, "next_page_token": after}


def _error(code: str, message: str, request_id: str) -> Any:
    return {"errors": {"code": code, "detail": message, "param": None, "request_id": request_id}}


CHATTERBOX = Vendor(
    "chatterbox", ChatterboxHook, "https://chatterbox.test", "cbx-secret-123",
    url="https://chatterbox.test/v2/workspaces/ws%2F42/conversations", auth={"X-Chatterbox-Key": "cbx-secret-123"},
    id_field="uid", conversation=_conversation, envelope=_page, order="asc", error=_error,
    carries=frozenset({"code", "request_id"}),
    refusal=Refusal(
        422, {"errors": {"code": "unknown_parameter", "detail": "colour is not a parameter of this endpoint",
                         "param": "colour", "request_id": "cbx-req-000007"}},
        code="unknown_parameter", param="colour", message="colour is not a parameter of this endpoint",
        request_id="cbx-req-000007",
        shown="HTTP 422, code=unknown_parameter, param=colour, message='colour is not a parameter of this endpoint', "
              "request_id=cbx-req-000007",
    ),
    one_item_query={"page_size": ["1"], "sort_by": ["opened_at"]},
    extra={"workspace": "ws/42"},  # a workspace id is one path segment: its slash is percent-encoded
    busy=("rate_limited", "slow_down"),
    has_more=HasMore("has_more", "next_page_token", "page_token"), loop=("same", "page_token=same"),
)
VENDORS = (CHATTERBOX,)
