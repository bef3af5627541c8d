"""One fixture per vendor API for the contract suite: how to reach it, what its pages and its errors look like.

Everything here is the vendor's wire format, written out by hand from its documentation (never computed with the
provider's own readers), so the contract tests check the hooks against the APIs and not against themselves. What
a vendor does differently from the rest is a field here; what every vendor must do alike is a test in
``test_every_vendor.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from airflow_provider_conversations.hooks.anyreach import AnyreachHook
from airflow_provider_conversations.hooks.base import ConversationsHook
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from airflow_provider_conversations.hooks.parrotmob import ParrotMobHook
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.hooks.replyful import ReplyfulHook

Item = dict[str, Any]
#: The time range every contract walk asks for; the conversations of a page lie inside it.
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
#: Every header any vendor carries its key (or its organisation) in: a vendor must send exactly its own.
AUTH_HEADERS = ("Authorization", "x-api-key", "xi-api-key", "X-Anyreach-Org")


def _iso(t: datetime, digits: int = 0) -> str:
    """``t`` in UTC with ``digits`` fractional digits and a ``Z``, as the vendor writes its timestamps."""
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{t.microsecond:06d}"[:digits]
    return text + "Z"


# ---------------------------------------------------------------------------------------------- conversations


def _polyai(i: int, t: datetime) -> Item:
    return {"id": f"c{i}", "started_at": _iso(t), "in_progress": False, "total_duration": 30}


def _elevenlabs(i: int, t: datetime) -> Item:
    return {"conversation_id": f"conv_{i}", "agent_id": "a1", "start_time_unix_secs": int(t.timestamp()),
            "call_duration_secs": 30, "status": "done"}


def _replyful(i: int, t: datetime) -> Item:
    return {"id": f"conv_{i}", "object": "conversation", "status": "resolved", "createdAt": _iso(t, 3),
            "updatedAt": _iso(t, 3), "channel": {"id": "ch_1", "name": "Website chat", "type": "chat"}}


def _anyreach(i: int, t: datetime) -> Item:
    return {"id": f"cnv_{i}", "created_at": _iso(t, 6), "updated_at": _iso(t, 6), "status": "completed"}


def _parrotmob(i: int, t: datetime) -> Item:
    return {"id": f"pm{i}", "status": "completed", "inserted_at": _iso(t), "updated_at": _iso(t)}


# ---------------------------------------------------------------------------------------------- page bodies
# (items, the continuation the body announces, whether it says there are more pages)


def _polyai_v3(items: list[Item], after: Any, more: bool) -> Any:
    return {"conversations": items, "cursor": after}  # v3 has no "more" flag: a null cursor is the end


def _polyai_v1(items: list[Item], after: Any, more: bool) -> Any:
    # v1 pages by offset: next_offset is absent on the last page
    return {"conversations": items, "descriptions": {}, **({} if after is None else {"next_offset": after})}


def _elevenlabs_page(items: list[Item], after: Any, more: bool) -> Any:
    return {"conversations": items, "next_cursor": after, "has_more": more}


def _replyful_page(items: list[Item], after: Any, more: bool) -> Any:
    return {"object": "list", "data": items, "hasMore": more, "nextCursor": after, "url": "/v1/conversations"}


def _bare_array(items: list[Item], after: Any, more: bool) -> Any:
    return items  # Anyreach and ParrotMob: a JSON array; a full page means "maybe more"


# ---------------------------------------------------------------------------------------------- error envelopes
# (code, message, request id) as the vendor's error body says them; a vendor keeps only what its envelope has


def _flat_error(code: str, message: str, request_id: str) -> Any:
    return {"success": False, "error": "Error", "error_id": request_id, "error_code": code, "error_message": message,
            "data": None}


def _detail_object(code: str, message: str, request_id: str) -> Any:
    return {"detail": {"type": "api_error", "code": code, "message": message, "request_id": request_id,
                       "param": None}}


def _nested_error(code: str, message: str, request_id: str) -> Any:
    return {"error": {"type": "api_error", "code": code, "message": message, "param": None,
                      "docUrl": f"https://docs.replyful.com/errors#{code}", "requestId": request_id}}


def _detail_text(code: str, message: str, request_id: str) -> Any:
    return {"detail": message}  # FastAPI's HTTPException: a message and nothing else


def _phoenix_errors(code: str, message: str, request_id: str) -> Any:
    return {"errors": {"code": code, "detail": message}}


@dataclass(frozen=True)
class Refusal:
    """A 4xx answer in the vendor's own words, and what the exception must carry of it.

    ``shown`` is the exception text after "``<Vendor> refused the request (connection '<id>'): ``".
    """

    status: int
    body: Any
    code: str | None
    param: str | None
    message: str
    request_id: str | None
    shown: str
    reason: str | None = None


#: FastAPI's own 422 (PolyAI and Anyreach are FastAPI services).
_FASTAPI_422 = Refusal(
    422, {"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000",
                      "type": "less_than_equal"}]},
    code="less_than_equal", param="limit", message="query.limit: Input should be less than or equal to 1000",
    request_id=None,
    shown="HTTP 422, code=less_than_equal, param=limit, message='query.limit: Input should be less than or equal "
          "to 1000'",
)


class HasMore(NamedTuple):
    """A cursor vendor's "more pages" flag: its body fields, and the query parameter the cursor goes back in."""

    flag: str
    cursor: str
    param: str


@dataclass(frozen=True)
class Vendor:
    """One vendor API as the contract suite drives it.

    ``page(n)`` builds a one-page body of ``n`` conversations (numbered from ``first``, inside ``[start, end)``
    and in the vendor's ``order``) that announces ``after`` as its continuation; ``ids(n)`` are their ids.
    ``error(code, message, request_id)`` is an error body in the vendor's envelope, of which ``carries`` says
    what the envelope holds besides the message. ``loop`` is the continuation a server keeps announcing to
    make this API's walk send the same request twice, and how it shows in that request (``None``: every
    request of this pagination moves on by itself).
    """

    id: str
    hook: type[ConversationsHook]
    host: str
    key: str
    url: str
    auth: dict[str, str]
    #: The field of a conversation that identifies it.
    id_field: str
    conversation: Callable[[int, datetime], Item]
    envelope: Callable[[list[Item], Any, bool], Any]
    order: Literal["asc", "desc"]
    error: Callable[[str, str, str], Any]
    carries: frozenset[str]
    refusal: Refusal
    #: What the connection test (a one-item list) sends, exactly.
    one_item_query: dict[str, list[str]]
    extra: dict[str, Any] | None = None
    conn_id: str = ""
    #: The error codes of the vendor's 429 answers.
    busy: tuple[str, ...] = ("rate_limited",)
    has_more: HasMore | None = None
    loop: tuple[Any, str] | None = None
    start: datetime = START
    end: datetime = END

    def __post_init__(self) -> None:
        if not self.conn_id:
            object.__setattr__(self, "conn_id", self.hook.default_conn_name)

    @property
    def name(self) -> str:
        return self.hook.hook_name

    @property
    def connection(self) -> dict[str, Any]:
        """The connection as ``AIRFLOW_CONN_<ID>`` JSON."""
        conn = {"conn_type": self.hook.conn_type, "host": self.host, "password": self.key}
        return conn if self.extra is None else {**conn, "extra": self.extra}

    def at(self, i: int) -> datetime:
        """When conversation ``i`` happened: ``i + 1`` minutes into the window, from its start or its end."""
        step = timedelta(minutes=i + 1)
        return self.start + step if self.order == "asc" else self.end - step

    def conversations(self, n: int, first: int = 0) -> list[Item]:
        return [self.conversation(i, self.at(i)) for i in range(first, first + n)]

    def ids(self, n: int, first: int = 0) -> list[str]:
        return [str(c[self.id_field]) for c in self.conversations(n, first)]

    def page(self, n: int, *, first: int = 0, after: Any = None, more: bool | None = None) -> Any:
        """The body of one page; ``more`` defaults to "a continuation is announced"."""
        return self.envelope(self.conversations(n, first), after, after is not None if more is None else more)


_POLYAI_EXTRA = {"account_id": "acct", "project_id": "proj"}
#: What PolyAI's two API versions share: the connection, the key header, the conversations and the errors.
_POLYAI: dict[str, Any] = {
    "hook": PolyAIHook, "host": "https://polyai.test", "key": "pk-secret-123", "auth": {"x-api-key": "pk-secret-123"},
    "id_field": "id", "conversation": _polyai, "order": "asc",
    "error": _flat_error, "carries": frozenset({"code", "request_id"}), "refusal": _FASTAPI_422,
    "one_item_query": {"limit": ["1"], "client_env": ["live"]},
}

POLYAI = Vendor("polyai", url="https://polyai.test/v3/acct/proj/conversations", envelope=_polyai_v3,
                extra={**_POLYAI_EXTRA, "api_version": "v3"}, loop=("same", "cursor=same"), **_POLYAI)
POLYAI_V1 = Vendor("polyai-v1", url="https://polyai.test/v1/acct/proj/conversations", envelope=_polyai_v1,
                   extra={**_POLYAI_EXTRA, "api_version": "v1"}, conn_id="polyai_v1", loop=(1, "offset=1"), **_POLYAI)

_ELEVENLABS_422 = Refusal(
    422, {"detail": {"type": "validation_error", "code": "invalid_parameter", "message": "page_size must be <= 100",
                     "request_id": "req_42", "param": "page_size"}},
    code="invalid_parameter", param="page_size", message="page_size must be <= 100", request_id="req_42",
    shown="HTTP 422, code=invalid_parameter, param=page_size, message='page_size must be <= 100', request_id=req_42",
)
ELEVENLABS = Vendor(
    "elevenlabs", ElevenLabsHook, "https://elevenlabs.test", "xi-secret-123",
    url="https://elevenlabs.test/v1/convai/conversations", auth={"xi-api-key": "xi-secret-123"},
    id_field="conversation_id", conversation=_elevenlabs, envelope=_elevenlabs_page, order="desc",
    error=_detail_object, carries=frozenset({"code", "request_id"}), refusal=_ELEVENLABS_422,
    one_item_query={"page_size": ["1"]},
    busy=("rate_limit_exceeded", "concurrent_limit_exceeded"),
    has_more=HasMore("has_more", "next_cursor", "cursor"), loop=("same", "cursor=same"),
)

_REPLYFUL_422 = Refusal(
    422, {"error": {"type": "invalid_request_error", "code": "invalid_query_parameter",
                    "message": "'limit' must be an integer from 1 to 100", "param": "limit",
                    "docUrl": "https://docs.replyful.com/errors#invalid_query_parameter", "requestId": "req_7Hq2"}},
    code="invalid_query_parameter", param="limit", message="'limit' must be an integer from 1 to 100",
    request_id="req_7Hq2", reason="Unprocessable Entity",
    shown="HTTP 422 Unprocessable Entity, code=invalid_query_parameter, param=limit, "
          "message=\"'limit' must be an integer from 1 to 100\", request_id=req_7Hq2",
)
REPLYFUL = Vendor(
    "replyful", ReplyfulHook, "https://replyful.test", "rfl_live_9f8e7d6c5b4a",
    url="https://replyful.test/v1/conversations", auth={"Authorization": "Bearer rfl_live_9f8e7d6c5b4a"},
    id_field="id", conversation=_replyful, envelope=_replyful_page, order="asc",
    error=_nested_error, carries=frozenset({"code", "request_id"}), refusal=_REPLYFUL_422,
    one_item_query={"limit": ["1"], "sort": ["createdAt"]}, busy=("too_many_requests",),
    has_more=HasMore("hasMore", "nextCursor", "startingAfter"), loop=("same", "startingAfter=same"),
)

# Anyreach and ParrotMob send no continuation: every request moves on by itself (a new timestamp cursor or a
# larger limit; an offset advanced by the page), so a server cannot make them send one request twice.
ANYREACH = Vendor(
    "anyreach", AnyreachHook, "https://anyreach.test", "ak_test.s3cr3t-key",
    url="https://anyreach.test/core/conversations", auth={"Authorization": "Bearer ak_test.s3cr3t-key"},
    id_field="id", conversation=_anyreach, envelope=_bare_array, order="desc",
    error=_detail_text, carries=frozenset(), refusal=_FASTAPI_422,
    one_item_query={"limit": ["1"]},
)

#: Phoenix's error body, with the parameter it refuses.
_PARROTMOB_400 = Refusal(
    400, {"errors": {"code": "invalid_parameter", "detail": "status must be one of ...", "param": "status"}},
    code="invalid_parameter", param="status", message="status must be one of ...", request_id=None,
    shown="HTTP 400, code=invalid_parameter, param=status, message='status must be one of ...'",
)
PARROTMOB = Vendor(
    "parrotmob", ParrotMobHook, "https://macaw.test", "pm-secret-123",
    url="https://macaw.test/accounts/me/conversations", auth={"Authorization": "Bearer pm-secret-123"},
    id_field="id", conversation=_parrotmob, envelope=_bare_array, order="desc",
    error=_phoenix_errors, carries=frozenset({"code"}), refusal=_PARROTMOB_400,
    one_item_query={"limit": ["1"], "offset": ["0"], "order_by": ["inserted_at_desc"]},
)

#: The five vendors, for what does not depend on the API version (error envelopes, status mapping). The suite runs
#: over these and the vendors of ``tests/*/contract_fixture.py`` (``all_vendors.py``).
VENDORS = (PARROTMOB, ANYREACH, POLYAI, ELEVENLABS, REPLYFUL)
#: Every API a hook speaks: the five, and PolyAI v1 (another path, body and pagination).
APIS = (*VENDORS, POLYAI_V1)
