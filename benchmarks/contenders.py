"""One benchmark contender per subprocess, so each gets its own peak RSS.

    python -m benchmarks.contenders <name> <simulator-url> <token> <page-size> [--parallel N] [--out DIR]

Prints one JSON line: records, unique ids, seconds of the fetch loop (imports excluded), RSS after imports.
All contenders page the same PolyAI v3 endpoint of the same simulator with the same page size and window.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ACCOUNT, PROJECT = "acct-1", "proj-1"
START, END = "2026-11-17T00:00:00Z", "2026-11-20T00:00:00Z"
PATH = f"/v3/{ACCOUNT}/{PROJECT}/conversations"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _params(page_size: int) -> dict[str, str]:
    return {"client_env": "live", "limit": str(page_size), "start_time": START, "end_time": END}


def bare_requests(url: str, token: str, page_size: int, **_: Any) -> tuple[Callable[[], tuple[int, int]], float]:
    """(1) What a user writes by hand: one requests.Session, response.json(), follow the cursor."""
    import requests

    def run() -> tuple[int, int]:
        session = requests.Session()
        params = _params(page_size)
        ids: set[str] = set()
        n = 0
        while True:
            body = session.get(url + PATH, params=params, headers={"x-api-key": token}, timeout=60).json()
            for c in body["conversations"]:
                ids.add(c["id"])
            n += len(body["conversations"])
            if not body["cursor"]:
                return n, len(ids)
            params["cursor"] = body["cursor"]

    return run, _rss_mb()


def _polyai_connection(url: str, token: str) -> None:
    os.environ["AIRFLOW_CONN_POLYAI_DEFAULT"] = json.dumps({
        "conn_type": "polyai", "host": url, "password": token,
        "extra": {"account_id": ACCOUNT, "project_id": PROJECT},
    })


def hook(url: str, token: str, page_size: int, parallel: int = 1, **_: Any) -> tuple[Callable[[], tuple[int, int]],
                                                                                      float]:
    """(2) Our hook's iter_conversations (exact window, de-duplication, retries, loop detection)."""
    _polyai_connection(url, token)
    from airflow_provider_conversations.hooks.polyai import PolyAIHook

    def run() -> tuple[int, int]:
        h = PolyAIHook(page_size=page_size)
        ids = {c["id"] for c in h.iter_conversations(START, END, max_parallel=parallel)}
        return h.stats.yielded, len(ids)

    return run, _rss_mb()


def operator(url: str, token: str, page_size: int, parallel: int = 1, out: str | None = None,
             **_: Any) -> tuple[Callable[[], tuple[int, int]], float]:
    """(3) ConversationsToObjectStorageOperator end to end: JSON Lines, gzip, atomic file on local disk."""
    _polyai_connection(url, token)
    # The operator imports the vendor hook (and requests) when it runs; import it here, as (2) and (4) do, so
    # the clock measures the export and not module imports.
    import airflow_provider_conversations.hooks.polyai  # noqa: F401
    from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

    target = out or tempfile.mkdtemp(prefix="bench-out-")
    kwargs: dict[str, Any] = {"max_parallel": parallel} if parallel > 1 else {}
    op = ConversationsToObjectStorageOperator(
        task_id="bench_export", conn_id="polyai_default", destination=f"file://{target}/", compression="gzip",
        page_size=page_size, start=START, end=END, **kwargs,
    )

    def run() -> tuple[int, int]:
        manifest = op.execute({})
        return int(manifest["count"]), int(manifest["count"])

    return run, _rss_mb()


def http_operator(url: str, token: str, page_size: int, **_: Any) -> tuple[Callable[[], tuple[int, int]], float]:
    """(4) Airflow's HttpOperator with pagination_function, as its docs suggest."""
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": url})
    from airflow.providers.http.operators.http import HttpOperator

    def next_page(response: Any) -> dict[str, Any] | None:
        cursor = response.json()["cursor"]
        return {"data": {"cursor": cursor}} if cursor else None

    def summarize(responses: list[Any]) -> tuple[int, int]:
        ids = [c["id"] for r in responses for c in r.json()["conversations"]]
        return len(ids), len(set(ids))

    op = HttpOperator(
        task_id="bench_http", http_conn_id="bench_http", method="GET", endpoint=PATH, data=_params(page_size),
        headers={"x-api-key": token}, pagination_function=next_page, response_filter=summarize,
        extra_options={"timeout": 60}, log_response=False,
    )

    def run() -> tuple[int, int]:
        result: tuple[int, int] = op.execute(context={})  # type: ignore[arg-type]
        return result

    return run, _rss_mb()


def dlt_client(url: str, token: str, page_size: int, **_: Any) -> tuple[Callable[[], tuple[int, int]], float]:
    """(5) dlt's RESTClient with a cursor paginator and a compiled data selector (its fast path)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    from dlt.common.jsonpath import compile_path
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

    def run() -> tuple[int, int]:
        client = RESTClient(
            base_url=url, headers={"x-api-key": token},
            paginator=JSONResponseCursorPaginator(cursor_path="cursor", cursor_param="cursor"),
            data_selector=compile_path("conversations"),
        )
        ids: set[str] = set()
        n = 0
        for page in client.paginate(PATH, params=_params(page_size)):
            n += len(page)
            ids.update(c["id"] for c in page)
        return n, len(ids)

    return run, _rss_mb()


CONTENDERS: dict[str, Callable[..., tuple[Callable[[], tuple[int, int]], float]]] = {
    "requests": bare_requests,
    "hook": hook,
    "operator": operator,
    "http_operator": http_operator,
    "dlt": dlt_client,
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=sorted(CONTENDERS))
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("page_size", type=int)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    run, baseline = CONTENDERS[a.name](a.url, a.token, a.page_size, parallel=a.parallel, out=a.out)
    t = time.perf_counter()
    records, unique = run()
    seconds = time.perf_counter() - t
    print(json.dumps({"name": a.name, "records": records, "unique": unique, "seconds": seconds,
                      "baseline_rss_mb": baseline, "peak_rss_mb": _rss_mb()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
