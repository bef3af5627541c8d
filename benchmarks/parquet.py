"""The ``parquet`` section of ``make bench``: Parquet (zstd) against JSONL.gz, the same export side by side.

    python -m benchmarks.parquet [--big 1000000] [--small 100000] [--page-size 100] [--output-format raw]
                                 [--repeats 3]

One PolyAI simulator process per size; each export runs in a fresh subprocess (its own ``ru_maxrss`` and CPU time,
``ru_utime + ru_stime``), JSON Lines and Parquet alternately on the same simulator, and writes to a local temporary
directory. Targets: Parquet's time
within 1.3x of JSONL.gz at ``--big``; Parquet's peak RSS at ``--big`` within 1.2x of ``--small`` (flat).

    python -m benchmarks.parquet run <jsonl|parquet> <simulator-url> <token> <page-size> <output-format>

is one export (what the subprocesses run); it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_TIME = 1.3
TARGET_RSS = 1.2


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (the writer threads included): less sensitive than wall time to
    other processes on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(file_format: str, url: str, token: str, page_size: int, output_format: str) -> dict[str, Any]:
    """One export to a temporary directory, in this process; times the export only (imports before)."""
    from benchmarks.contenders import END, START, _polyai_connection, _rss_mb

    _polyai_connection(url, token)
    import airflow_provider_conversations.hooks.polyai  # noqa: F401  (as the other contenders: imports excluded)
    from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

    if file_format == "parquet":
        import pyarrow.parquet  # noqa: F401
    target = tempfile.mkdtemp(prefix="bench-parquet-")
    try:
        op = ConversationsToObjectStorageOperator(
            task_id="bench_export", conn_id="polyai_default", destination=f"file://{target}/",
            file_format=file_format, page_size=page_size, start=START, end=END, output_format=output_format,
        )
        baseline = _rss_mb()
        cpu, t = _cpu_seconds(), time.perf_counter()
        manifest = op.execute({})  # type: ignore[arg-type]
        seconds, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        return {"file_format": file_format, "records": manifest["count"], "bytes": manifest["bytes"],
                "seconds": seconds, "cpu_seconds": cpu, "baseline_rss_mb": baseline, "peak_rss_mb": _rss_mb()}
    finally:
        shutil.rmtree(target, ignore_errors=True)


@dataclass
class Result:
    file_format: str
    conversations: int
    records: int
    bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float


def measure(file_format: str, url: str, token: str, page_size: int, output_format: str,
            conversations: int) -> Result:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(ROOT)}
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".scratch" / "bench-airflow-home"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.parquet", "run", file_format, url, token, str(page_size), output_format],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800, check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{file_format} export failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(file_format, conversations, d["records"], d["bytes"], d["seconds"], d["cpu_seconds"],
                  d["peak_rss_mb"], d["baseline_rss_mb"])


def median(runs: list[Result]) -> Result:
    """The run of median time, with the median CPU time and peak RSS of all runs."""
    runs = sorted(runs, key=lambda r: r.seconds)
    mid = runs[len(runs) // 2]
    mid.cpu_seconds = statistics.median(r.cpu_seconds for r in runs)
    mid.peak_rss_mb = statistics.median(r.peak_rss_mb for r in runs)
    return mid


def section(*, big: int, small: int, page_size: int, output_format: str = "raw", repeats: int = 3) -> list[str]:
    """Run the comparison (formats alternating, ``repeats`` times each); return the report's lines (markdown)."""
    from benchmarks.run import TOKEN, Simulator

    results: dict[tuple[str, int], Result] = {}
    for n in (small, big):
        runs: dict[str, list[Result]] = {"jsonl": [], "parquet": []}
        with Simulator(n) as sim:
            for _ in range(repeats):
                for file_format in runs:
                    runs[file_format].append(measure(file_format, sim.url, TOKEN, page_size, output_format, n))
        for file_format, done in runs.items():
            results[file_format, n] = median(done)
    lines = [
        f"## Parquet against JSONL.gz ({output_format} records, page size {page_size}, median of {repeats})",
        "",
        "| file format | conversations | records | MB on disk | seconds | records/s | CPU seconds | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (file_format, n), r in results.items():
        label = "Parquet (zstd)" if file_format == "parquet" else "JSONL.gz"
        lines.append(f"| {label} | {n:,} | {r.records:,} | {r.bytes / 2**20:.1f} | {r.seconds:.2f} | "
                     f"{r.records / r.seconds:,.0f} | {r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} |")
    pq_big, js_big, pq_small = results["parquet", big], results["jsonl", big], results["parquet", small]
    t = pq_big.seconds / js_big.seconds
    c = pq_big.cpu_seconds / js_big.cpu_seconds
    m = pq_big.peak_rss_mb / pq_small.peak_rss_mb
    ok = {True: "met", False: "NOT met"}
    lines += [
        "",
        f"- Parquet time within {TARGET_TIME}x of JSONL.gz at {big:,}: {pq_big.seconds:.1f} / {js_big.seconds:.1f} s"
        f" = {t:.2f} (target <= {TARGET_TIME}): {ok[t <= TARGET_TIME]}; CPU time of the exporting process "
        f"{pq_big.cpu_seconds:.1f} / {js_big.cpu_seconds:.1f} s = {c:.2f}",
        f"- Parquet peak RSS at {big:,} within {TARGET_RSS}x of {small:,}: {pq_big.peak_rss_mb:.0f} / "
        f"{pq_small.peak_rss_mb:.0f} MB = {m:.2f} (target <= {TARGET_RSS}): {ok[m <= TARGET_RSS]}",
        f"- Parquet is {pq_big.bytes / js_big.bytes:.2f}x the bytes of JSONL.gz; the same records: "
        f"{pq_big.records == js_big.records}",
    ]
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"]:
        _, file_format, url, token, page_size, output_format = argv
        print(json.dumps(run_one(file_format, url, token, int(page_size), output_format)), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=100_000)
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--output-format", choices=("raw", "normalized"), default="raw")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    for line in section(big=a.big, small=a.small, page_size=a.page_size, output_format=a.output_format,
                        repeats=a.repeats):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
