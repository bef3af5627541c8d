"""``make bench``: every contender against the same loopback simulator, in one run, with the targets checked.

    python -m benchmarks.run [--conversations 100000] [--big 1000000] [--page-size 100] [--repeats 3]

The simulator runs in its own process (as a vendor would); each contender runs in a fresh subprocess so its peak
RSS is its own. Ratios between contenders of one run are the result, not absolute times. Writes the report to
benchmarks/results/latest.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import details

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TOKEN = "bench-token-0123456789"
LABELS = {
    "requests": "(1) bare requests.Session loop",
    "hook": "(2) PolyAIHook.iter_conversations",
    "operator": "(3) ConversationsToObjectStorageOperator, JSONL.gz",
    "http_operator": "(4) HttpOperator + pagination_function",
    "dlt": "(5) dlt RESTClient",
}


@dataclass
class Run:
    name: str
    records: int
    unique: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def growth_mb(self) -> float:
        return max(0.0, self.peak_rss_mb - self.baseline_rss_mb)


class Simulator:
    """The PolyAI simulator in a child process, stopped on exit."""

    def __init__(self, conversations: int, latency_ms: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_conversations.testing", "--vendor", "polyai",
             "--conversations", str(conversations), "--token", TOKEN, "--max-seconds", "3600",
             "--set", 'environments=["live"]', "--set", "transcripts=false",  # rows as small as before turns
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("simulator did not start")
        self.url: str = json.loads(line)["url"]

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_contender(name: str, url: str, page_size: int, parallel: int = 1, timeout: float = 1800) -> Run:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(ROOT)}
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".scratch" / "bench-airflow-home"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.contenders", name, url, TOKEN, str(page_size), "--parallel",
         str(parallel)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Run(name, data["records"], data["unique"], data["seconds"], data["peak_rss_mb"], data["baseline_rss_mb"])


def median_run(name: str, url: str, page_size: int, repeats: int, parallel: int = 1) -> Run:
    runs = [run_contender(name, url, page_size, parallel) for _ in range(repeats)]
    runs.sort(key=lambda r: r.seconds)
    best = runs[len(runs) // 2]
    best.peak_rss_mb = statistics.median(r.peak_rss_mb for r in runs)
    best.baseline_rss_mb = statistics.median(r.baseline_rss_mb for r in runs)
    return best


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}, {platform.system()}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("apache-airflow", "apache-airflow-providers-http", "requests", "orjson", "dlt"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--big", type=int, default=1_000_000, help="size of the operator's memory run (0: skip)")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency of the parallel-windows run")
    p.add_argument("--parallel-conversations", type=int, default=100_000)
    p.add_argument("--skip", default="",
                   help="comma-separated contenders or sections to skip (cluster, rate_budget, resume, parquet, "
                        "details)")
    details.add_arguments(p)
    p.add_argument("--resume-conversations", type=int, default=200_000,
                   help="size of the resumable-export section, benchmarks/resume.py (0: skip)")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"# Benchmark run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    say()
    say(f"Machine: {machine()}. Versions: {versions()}.")
    say(f"Simulator: PolyAI v3 wire format on 127.0.0.1, own process; {a.conversations:,} conversations over 3 days "
        f"all in the exported client_env, one window over all of them, page size {a.page_size}, "
        f"median of {a.repeats} runs each; peak RSS of each contender's own process (getrusage).")
    say()

    results: dict[str, Run] = {}
    with Simulator(a.conversations) as sim:
        for name in LABELS:
            if name in skip:
                continue
            try:
                results[name] = median_run(name, sim.url, a.page_size, a.repeats)
            except RuntimeError as exc:
                say(f"- {LABELS[name]}: failed: {str(exc).splitlines()[0]}")
    base = results.get("requests")
    say("| contender | records | unique | seconds | records/s | time vs (1) | peak RSS MB | RSS above imports MB |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        ratio = f"{r.seconds / base.seconds:.2f}" if base else "-"
        say(f"| {LABELS[name]} | {r.records:,} | {r.unique:,} | {r.seconds:.2f} | {r.rate:,.0f} | {ratio} | "
            f"{r.peak_rss_mb:.0f} | {r.growth_mb:.1f} |")
    say()

    big: Run | None = None
    if a.big and "operator" not in skip:
        with Simulator(a.big) as sim:
            big = run_contender("operator", sim.url, a.page_size)
        say(f"Operator (3) at {a.big:,} conversations: {big.records:,} records in {big.seconds:.1f} s, "
            f"peak RSS {big.peak_rss_mb:.0f} MB.")
        say()

    par: dict[int, Run] = {}
    if a.parallel_conversations and "operator" not in skip:
        with Simulator(a.parallel_conversations, latency_ms=a.latency_ms) as sim:
            for workers in (1, 8):
                par[workers] = run_contender("operator", sim.url, a.page_size, parallel=workers)
        say(f"Parallel windows: {a.parallel_conversations:,} conversations, {a.latency_ms:g} ms latency per request, "
            f"page size {a.page_size}: sequential {par[1].seconds:.1f} s, max_parallel=8 {par[8].seconds:.1f} s "
            f"({par[1].seconds / par[8].seconds:.1f}x), same count: {par[1].records == par[8].records}.")
        say()

    if "cluster" not in skip:  # benchmarks/cluster.py: mapped fan-out on the CeleryExecutor cluster
        from benchmarks.cluster import measure

        try:
            for line in measure(300_000, a.latency_ms, 8, 2, 4, a.page_size):
                say(line)
        except (RuntimeError, OSError) as exc:
            say(f"- cluster fan-out: failed: {str(exc).splitlines()[0]}")
        say()
    if "rate_budget" not in skip:  # benchmarks/rate_budget.py: four processes, one Replyful key
        from benchmarks import rate_budget

        rate_budget.section(say)
        say()
    if a.resume_conversations and "resume" not in skip:
        from benchmarks.resume import section as resume_section

        say("## Resume")
        say()
        resume_section(say, a.resume_conversations, a.page_size)
        say()

    say("## Targets")
    say()
    op, http = results.get("operator"), results.get("http_operator")
    if base and "hook" in results:
        r = results["hook"].seconds / base.seconds
        say(f"- (2) at least as fast as (1): time ratio {r:.2f} (target <= 1.00): {verdict(r <= 1.0)}")
    if base and op:
        r = op.seconds / base.seconds
        say(f"- (3) with gzip within 1.25x of (1): time ratio {r:.2f} (target <= 1.25): {verdict(r <= 1.25)}")
    if op and big:
        r = big.peak_rss_mb / op.peak_rss_mb
        say(f"- (3) peak RSS at {a.big:,} within 1.2x of {a.conversations:,}: {big.peak_rss_mb:.0f} / "
            f"{op.peak_rss_mb:.0f} MB = {r:.2f} (target <= 1.20): {verdict(r <= 1.2)}")
    if op and http:
        speed = http.seconds / op.seconds
        mem = http.growth_mb / op.growth_mb if op.growth_mb else float("inf")
        say(f"- (3) at least 2x faster than (4): {speed:.1f}x: {verdict(speed >= 2)}")
        say(f"- (3) at least 4x less memory than (4), counted as RSS above the import baseline (both processes "
            f"import Airflow, ~{op.baseline_rss_mb:.0f} MB): {http.growth_mb:.1f} vs {op.growth_mb:.1f} MB = "
            f"{mem:.1f}x: {verdict(mem >= 4)}; absolute peaks {http.peak_rss_mb:.0f} vs {op.peak_rss_mb:.0f} MB")
    if par:
        s = par[1].seconds / par[8].seconds
        say(f"- max_parallel=8 at least 5x faster than sequential under {a.latency_ms:g} ms latency: {s:.1f}x: "
            f"{verdict(s >= 5)}")
    if "parquet" not in skip and a.big:  # --skip parquet; its own section: benchmarks/parquet.py
        from benchmarks.parquet import section as parquet_section

        say()
        for line in parquet_section(big=a.big, small=a.conversations, page_size=a.page_size, repeats=a.repeats):
            say(line)
    if "details" not in skip:
        say()
        details.section(a, say)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {RESULTS / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
