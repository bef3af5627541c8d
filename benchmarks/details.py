"""The ``details`` section of ``make bench``: exports with ``include_details=True`` against loopback simulators.

    python -m benchmarks.details [--conversations 10000] [--latency-ms 50] [--rss-big 100000] ...
    python -m benchmarks.run --skip ...            # runs this section too, unless --skip details

Three measurements, each export in a fresh subprocess (its own peak RSS, ``ru_maxrss``), each simulator in its
own process:

1. **Concurrency**: ElevenLabs, ``conversations`` in one window, ``latency_ms`` added to every request (list
   pages and details): ``detail_concurrency=8`` vs ``1``. Targets: at least 6x faster, and within 1.25x of the
   floor = listing time (the same export without details) + conversations x latency / 8.
2. **One rate limit**: Replyful with its real limit, 100 requests per 60 s, time-compressed to 100 per
   ``--rate-window`` seconds: a window whose listing + details need R requests. The simulator counts requests in
   fixed windows from the first one, so R requests cannot finish before (ceil(R / 100) - 1) windows have passed:
   that is the floor. Targets: within 1.1x of it, and no 429 (the manifest's ``retries`` is 0: nothing else
   fails in this run).
3. **Flat memory**: peak RSS of a 100,000-conversation export with details vs a 10,000 one (no latency).
   Target: at most 1.2x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {"elevenlabs": "bench-el-key-0123456789", "replyful": "rfl_test_bench0123456789"}
#: Every simulated conversation lies in [START, START + SPAN_HOURS): one window over all of them.
SPAN_HOURS = 24.0


@contextmanager
def simulator(vendor: str, conversations: int, *, latency_ms: float = 0.0, rate_limit: str | None = None
              ) -> Iterator[dict[str, Any]]:
    """A simulator in its own process; yields its connection (``AIRFLOW_CONN_*`` JSON) and stops it after."""
    cmd = [sys.executable, "-m", "airflow_provider_conversations.testing", "--vendor", vendor,
           "--conversations", str(conversations), "--token", TOKENS[vendor], "--max-seconds", "3600",
           "--span-hours", str(SPAN_HOURS), "--latency-ms", str(latency_ms)]
    if rate_limit:
        cmd += ["--rate-limit", rate_limit]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {vendor} simulator did not start")
        yield json.loads(line)["connection"]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def export(vendor: str, connection: dict[str, Any], *, details: bool, concurrency: int = 8, page_size: int = 100,
           timeout: float = 3600) -> dict[str, Any]:
    """One export in a fresh subprocess (``worker`` below): its manifest plus ``seconds`` and ``peak_rss_mb``."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(ROOT),
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".scratch" / "bench-airflow-home"))
    job = {"vendor": vendor, "connection": connection, "details": details, "concurrency": concurrency,
           "page_size": page_size}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.details", "worker", json.dumps(job)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{vendor} export failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in the subprocess: the operator's export of the whole simulated span to a temporary directory."""
    from datetime import timedelta

    from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
    from airflow_provider_conversations.testing.dataset import DEFAULT_START

    os.environ["AIRFLOW_CONN_BENCH"] = json.dumps(job["connection"])
    with tempfile.TemporaryDirectory(prefix="bench-details-") as out:
        op = ConversationsToObjectStorageOperator(
            task_id="bench", conn_id="bench", vendor=job["vendor"], destination=f"file://{out}/",
            start=DEFAULT_START, end=DEFAULT_START + timedelta(hours=SPAN_HOURS), page_size=job["page_size"],
            include_details=job["details"], detail_concurrency=job["concurrency"])
        started = time.monotonic()
        manifest = op.execute({})
        seconds = time.monotonic() - started
    return {**manifest, "seconds": round(seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def section(a: argparse.Namespace, say: Callable[..., None]) -> None:
    """Run the three measurements and report them (markdown lines through ``say``)."""
    say("## Details (include_details=True)")
    say()
    n, lat = a.detail_conversations, a.detail_latency_ms
    with simulator("elevenlabs", n, latency_ms=lat) as conn:
        listing = export("elevenlabs", conn, details=False)
        c8 = export("elevenlabs", conn, details=True, concurrency=8)
        c1 = export("elevenlabs", conn, details=True, concurrency=1) if not a.skip_sequential_details else None
    floor = listing["seconds"] + n * lat / 1000 / 8
    say(f"ElevenLabs, {n:,} conversations in one window, {lat:g} ms latency per request, page size 100: listing "
        f"alone {listing['seconds']:.1f} s ({listing['requests']} requests); detail_concurrency=8 "
        f"{c8['seconds']:.1f} s ({c8['requests']:,} requests, {c8['details_fetched']:,} details)"
        + (f"; detail_concurrency=1 {c1['seconds']:.1f} s" if c1 else "") + f"; floor {floor:.1f} s.")
    say()
    rows = [("detail_concurrency=8 vs floor (listing + N x latency / 8)", c8["seconds"] / floor, "<= 1.25",
             c8["seconds"] / floor <= 1.25)]
    if c1:
        rows.insert(0, ("detail_concurrency=8 vs 1, speed-up", c1["seconds"] / c8["seconds"], ">= 6",
                        c1["seconds"] / c8["seconds"] >= 6))

    limit, window = 100, a.rate_window
    rf_n = a.rate_conversations
    with simulator("replyful", rf_n, rate_limit=f"{limit}/{window:g}") as conn:
        rf = export("replyful", conn, details=True, concurrency=8)
    r = rf["requests"]
    rf_floor = (math.ceil(r / limit) - 1) * window
    say(f"Replyful, its limit of {limit} requests / 60 s time-compressed to {limit} / {window:g} s: {rf_n:,} "
        f"conversations, R = {r:,} requests (listing + details) in {rf['seconds']:.1f} s; floor "
        f"(ceil(R / {limit}) - 1) x {window:g} s = {rf_floor:.1f} s; retries (429s) {rf['retries']}, "
        f"throttle waits {rf['throttle_waits']}.")
    say()
    rows.append(("Replyful under its limit vs floor", rf["seconds"] / rf_floor if rf_floor else 0.0, "<= 1.10",
                 rf_floor > 0 and rf["seconds"] / rf_floor <= 1.1 and rf["retries"] == 0))

    small_n, big_n = a.rss_small, a.rss_big
    with simulator("elevenlabs", small_n) as conn:
        small = export("elevenlabs", conn, details=True, concurrency=8)
    with simulator("elevenlabs", big_n) as conn:
        big = export("elevenlabs", conn, details=True, concurrency=8)
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    say(f"Peak RSS with details: {small['count']:,} conversations {small['peak_rss_mb']:.0f} MB, "
        f"{big['count']:,} conversations {big['peak_rss_mb']:.0f} MB ({big['seconds']:.0f} s).")
    say()
    rows.append((f"peak RSS {big_n:,} vs {small_n:,} with details", ratio, "<= 1.20", ratio <= 1.2))
    say("| details target | measured | target | verdict |")
    say("|---|---:|---:|---|")
    for name, value, target, ok in rows:
        say(f"| {name} | {value:.2f} | {target} | {verdict(ok)} |")
    say()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detail-conversations", type=int, default=10_000)
    p.add_argument("--detail-latency-ms", type=float, default=50.0)
    p.add_argument("--skip-sequential-details", action="store_true",
                   help="skip the detail_concurrency=1 run (conversations x latency: 500 s at the defaults)")
    p.add_argument("--rate-conversations", type=int, default=1_000)
    p.add_argument("--rate-window", type=float, default=2.0, help="seconds per 100 Replyful requests")
    p.add_argument("--rss-small", type=int, default=10_000)
    p.add_argument("--rss-big", type=int, default=100_000)


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        print(json.dumps(worker(json.loads(argv[1]))), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "details.md")
    a = p.parse_args(argv)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    section(a, say)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
