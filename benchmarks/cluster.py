"""The cluster's mapped fan-out of one day against one sequential task, on the real CeleryExecutor cluster.

    python -m benchmarks.cluster [--conversations 300000] [--latency-ms 50] [--parts 8] [--workers 2]

Starts tools/cluster.py (PostgreSQL, Redis, two Celery workers) with only the PolyAI simulator, at ``--latency-ms``
per request, and a DAG folder of two benchmark DAGs: ``bench_day_sequential`` exports the day in one task,
``bench_day_fanout`` maps ``split_window(day, --parts)`` onto one export each. Each runs twice (the first run of a
DAG also warms the workers); the second is measured. Reported: the run's wall time (queued to done, as the
scheduler records it) and the export phase (first export start to last export end), and whether both runs wrote
the same conversations. Called by ``make bench`` (section ``cluster``) or on its own; prints markdown lines.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tools.cluster import Cluster, cluster
from tools.demo import REPO

DAY = DEFAULT_START + timedelta(days=1)
DAGS = '''
import os
import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.windows import split_window

ROOT = os.environ["CONVERSATIONS_EXPORT_ROOT"]
COMMON = dict(conn_id="polyai_default", vendor="polyai", compression="gzip", page_size=PAGE_SIZE)
KW = dict(schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
          start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)


@dag(dag_id="bench_day_sequential", **KW)
def bench_day_sequential():
    ConversationsToObjectStorageOperator(task_id="export", destination=ROOT + "/sequential/", **COMMON)


@dag(dag_id="bench_day_fanout", **KW)
def bench_day_fanout():
    @task
    def subwindows(data_interval_start=None, data_interval_end=None):
        return split_window(data_interval_start, data_interval_end, PARTS)

    ConversationsToObjectStorageOperator.partial(task_id="export", destination=ROOT + "/fanout/",
                                                 **COMMON).expand_kwargs(subwindows())


bench_day_sequential()
bench_day_fanout()
'''


@dataclass
class Timing:
    run_seconds: float
    export_seconds: float
    tasks: int
    hosts: set[str]
    ids: list[str]


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_once(c: Cluster, dag_id: str, logical: datetime) -> Timing:
    response = c.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": logical.isoformat()})
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]
    run = c.wait_for_run(dag_id, run_id, timeout=900)
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} {run_id} ended {run['state']}; logs in {c.logs}")
    tis = [t for t in c.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 100}).json()["task_instances"] if t["task_id"] == "export"]
    ids: list[str] = []
    for t in tis:
        manifest: Any = c.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/export/xcomEntries/"
                                     f"return_value", params={"map_index": t["map_index"]}).json()["value"]
        manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
        path = Path(manifest["uri"].removeprefix("file://"))
        ids.extend(json.loads(line)["id"] for line in gzip.decompress(path.read_bytes()).splitlines())
    return Timing(
        run_seconds=(_ts(run["end_date"]) - _ts(run["start_date"])).total_seconds(),
        export_seconds=(max(_ts(t["end_date"]) for t in tis) - min(_ts(t["start_date"]) for t in tis)).total_seconds(),
        tasks=len(tis), hosts={t["hostname"] for t in tis}, ids=ids)


def measure(conversations: int, latency_ms: float, parts: int, workers: int, concurrency: int,
            page_size: int) -> list[str]:
    scratch = REPO / ".scratch" / "bench-cluster"
    dags = REPO / ".scratch" / "bench-cluster-dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "bench_day.py").write_text(DAGS.replace("PAGE_SIZE", str(page_size)).replace("PARTS", str(parts)))
    # Unpaused, but only the runs triggered here (no scheduled run of another day competing for the workers).
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    with cluster(scratch, workers=workers, concurrency=concurrency, conversations=conversations, seed=7,
                 max_seconds=600, latency_ms=latency_ms, bound_seconds=3600, extra_env=env,
                 vendors=("polyai",)) as c:
        truth = sorted(c.sims["polyai"].ground_truth(DAY, DAY + timedelta(days=1)))
        result: dict[str, Timing] = {}
        for dag_id in ("bench_day_sequential", "bench_day_fanout"):
            c.wait_for_dag(dag_id)
            run_once(c, dag_id, DAY + timedelta(days=1) - timedelta(microseconds=1))  # warm-up: other logical date
            result[dag_id] = run_once(c, dag_id, DAY + timedelta(days=1))
    seq, fan = result["bench_day_sequential"], result["bench_day_fanout"]
    exact = sorted(seq.ids) == sorted(fan.ids) == truth
    pages = -(-len(truth) // page_size)
    return [
        f"Cluster fan-out (tools/cluster.py: CeleryExecutor, PostgreSQL, Redis, {workers} workers x {concurrency} "
        f"slots): one day of {len(truth):,} PolyAI conversations (~{pages} pages of {page_size}), {latency_ms:g} ms "
        f"simulated latency per request; second run of each DAG.",
        "",
        "| DAG | export tasks | workers used | run wall s | export phase s |",
        "|---|---:|---:|---:|---:|",
        f"| one sequential task | {seq.tasks} | {len(seq.hosts)} | {seq.run_seconds:.1f} | {seq.export_seconds:.1f} |",
        f"| {parts} mapped sub-windows (`split_window`) | {fan.tasks} | {len(fan.hosts)} | {fan.run_seconds:.1f} | "
        f"{fan.export_seconds:.1f} |",
        "",
        f"- Speed-up of the mapped fan-out: {seq.run_seconds / fan.run_seconds:.1f}x run wall time, "
        f"{seq.export_seconds / fan.export_seconds:.1f}x export phase; same conversations as the ground truth in "
        f"both: {exact}; parts ran on {', '.join(sorted(fan.hosts))}.",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=300_000, help="over 3 days; a day holds about a fifth")
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4, help="task slots per worker")
    p.add_argument("--page-size", type=int, default=100)
    a = p.parse_args(argv)
    for line in measure(a.conversations, a.latency_ms, a.parts, a.workers, a.concurrency, a.page_size):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
