"""One Replyful key, four concurrent tasks (separate processes): the rate budget shared through Redis, or not.

    python -m benchmarks.rate_budget [--tasks 4] [--conversations 2000] [--page-size 20] [--limit 20/2]

One Replyful simulator enforcing a time-compressed limit (default 20 requests per 2 s) and one API key; the
window is split into one sub-window per task, each task a fresh ``python`` process walking its sub-window with
``ReplyfulHook`` (connection extra ``rate_limit`` = the limit). Two runs: with ``rate_limit_storage`` pointing at a
throw-away ``redis-server`` (every task draws from one budget), and without (each task paces alone). Reported:
the simulator's 429 count, whether the union of the tasks' records equals the ground truth exactly once, and the
wall time against the floor the limit sets (requests / limit * window). Wall time counts from the first task's
start (every process has imported Airflow and read its connection, then all are released at once) to the last
task's end, on the tasks' own clock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "rfl_test_benchbudget0123456789"
SPAN = timedelta(days=3)


@dataclass
class Result:
    shared: bool
    tasks: int
    ok_requests: int
    throttled: int
    seconds: float
    floor: float
    exact: bool
    retries: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor if self.floor else 0.0


def worker(start: str, end: str, page_size: int) -> int:
    """One task: wait for the go line on stdin, walk ``[start, end)``, print ids and counters as JSON."""
    from airflow_provider_conversations.hooks.replyful import ReplyfulHook

    hook = ReplyfulHook(page_size=page_size)
    hook.get_conn()  # the connection read and checked, the session made: start-up, not rate-limited work
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.time()
    ids = [c["id"] for c in hook.iter_conversations(datetime.fromisoformat(start), datetime.fromisoformat(end))]
    print("RESULT " + json.dumps({"ids": ids, "requests": hook.stats.requests, "retries": hook.stats.retries,
                                  "began": began, "ended": time.time()}), flush=True)
    return 0


def _read_until(proc: subprocess.Popen[str], prefix: str) -> str:
    """The first line of ``proc``'s stdout starting with ``prefix`` (Airflow may log to stdout before it)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"a task ended without printing {prefix.strip()!r} (exit code {proc.wait()})")


def run_once(*, shared: bool, tasks: int, conversations: int, page_size: int, limit: tuple[int, int],
             redis_url: str | None) -> Result:
    from airflow_provider_conversations.testing import simulator
    from airflow_provider_conversations.testing.dataset import DEFAULT_START

    with simulator("replyful", conversations=conversations, seed=16, token=TOKEN, rate_limit=(limit[0], limit[1]),
                   max_seconds=900, log_requests=False) as sim:
        conn = sim.connection()
        if shared:
            conn["extra"]["rate_limit_storage"] = redis_url
        env = {**os.environ, "AIRFLOW_CONN_REPLYFUL_DEFAULT": json.dumps(conn), "PYTHONPATH": str(ROOT)}
        step = SPAN / tasks
        procs = []
        for i in range(tasks):
            lo, hi = DEFAULT_START + i * step, DEFAULT_START + (i + 1) * step
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.rate_budget", "worker", lo.isoformat(), hi.isoformat(),
                 str(page_size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True))
        try:
            for p in procs:
                _read_until(p, "ready")
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            # the end is each task's last line (its records), not its interpreter's exit
            outputs = [_read_until(p, "RESULT ") for p in procs]
            for p in procs:
                p.communicate(timeout=120)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a task failed: exit codes {[p.returncode for p in procs]}")
        results = [json.loads(out.removeprefix("RESULT ")) for out in outputs]
        # the tasks' own clock (one machine): from the first task's start to the last one's end, without the
        # scheduling of this parent's pipes on a busy machine
        seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
        ids = Counter(i for r in results for i in r["ids"])
        truth = sim.ground_truth(DEFAULT_START, DEFAULT_START + SPAN)
        exact = set(ids) == set(truth) and len(ids) == len(truth) and all(n == 1 for n in ids.values())
        throttled = sim.stats.throttled
        ok_requests = sim.stats.requests - throttled
    return Result(shared, tasks, ok_requests, throttled, seconds, ok_requests / limit[0] * limit[1], exact,
                  sum(r["retries"] for r in results))


def section(say: Callable[[str], None], *, tasks: int = 4, conversations: int = 2000, page_size: int = 20,
            limit: tuple[int, int] = (20, 2)) -> list[Result]:
    """The ``rate_budget`` section of ``make bench``: both runs, a table and the targets."""
    from tools.redis_server import RedisServer

    results = []
    with RedisServer(max_seconds=900) as redis:
        for shared in (True, False):
            results.append(run_once(shared=shared, tasks=tasks, conversations=conversations, page_size=page_size,
                                    limit=limit, redis_url=redis.url))
    say(f"Rate budget: {tasks} concurrent tasks (separate processes) with one Replyful key, the simulator limited "
        f"to {limit[0]} requests / {limit[1]} s, {conversations:,} conversations, page size {page_size} "
        "(`python -m benchmarks.rate_budget`):")
    say("")
    say("| budget | requests | HTTP 429s | retries | exact output | seconds | floor s | time vs floor |")
    say("|---|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        say(f"| {'shared (rate_limit_storage=redis://...)' if r.shared else 'per task (in process)'} | "
            f"{r.ok_requests} | {r.throttled} | {r.retries} | {r.exact} | {r.seconds:.1f} | {r.floor:.1f} | "
            f"{r.ratio:.2f} |")
    say("")
    shared = results[0]
    ok = shared.throttled == 0 and shared.exact and shared.ratio <= 1.15
    say(f"- shared budget: zero 429s ({shared.throttled}), exact output ({shared.exact}), wall time within 1.15x "
        f"of the floor ({shared.ratio:.2f}): {'PASS' if ok else 'FAIL'}")
    say("")
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        return worker(argv[1], argv[2], int(argv[3]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--conversations", type=int, default=2000)
    p.add_argument("--page-size", type=int, default=20)
    p.add_argument("--limit", default="20/2", help="the simulator's limit and the key's budget, N/SECONDS")
    a = p.parse_args(argv)
    n, _, s = a.limit.partition("/")
    results = section(print, tasks=a.tasks, conversations=a.conversations, page_size=a.page_size,
                      limit=(int(n), int(s)))
    return 0 if results[0].throttled == 0 and results[0].exact and results[0].ratio <= 1.15 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
