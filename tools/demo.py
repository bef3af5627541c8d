"""``make demo`` and ``make airflow``: the example DAGs against the five simulators, in a scratch Airflow.

    python -m tools.demo run [--home .scratch/demo]
    python -m tools.demo standalone [--home .scratch/airflow] [--port 8080]

``run`` migrates a SQLite metadata DB under ``--home``, starts the simulators, points the ``<vendor>_default``
connections at them, runs each vendor's example DAG for consecutive hourly intervals with ``dag.test()``, prints
what was exported, checks it against the simulators' ground truth, and stops everything (exit 1 on a mismatch).

``standalone`` starts ``airflow standalone`` on 127.0.0.1 with the same simulators, connections and example
DAGs, prints the URL and login, and runs until interrupted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_conversations.catalog import CONN_TYPES
from airflow_provider_conversations.testing import simulator
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import VendorSimulator

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "dags_examples"
#: The time key an example DAG exports by, where it is not ``created``.
EXAMPLE_TIME_KEYS = {"replyful": "updated"}
#: vendor -> (example DAG id, time key the example exports by), for every vendor of the catalog.
VENDOR_DAGS: dict[str, tuple[str, str]] = {
    vendor: (f"conversations_{vendor}_hourly", EXAMPLE_TIME_KEYS.get(vendor, "created")) for vendor in CONN_TYPES
}
DEMO_TOKEN = {"replyful": "rfl_test_demo_0123456789"}


@contextmanager
def simulators(conversations: int, seed: int = 42, max_seconds: float = 3600,
               ports: dict[str, int] | None = None,
               only: tuple[str, ...] | None = None) -> Iterator[dict[str, VendorSimulator]]:
    """The five simulators (or those in ``only``), started, every conversation already finished; always stopped."""
    started: dict[str, VendorSimulator] = {}
    try:
        for i, vendor in enumerate(VENDOR_DAGS):
            if only is not None and vendor not in only:
                continue
            kwargs: dict[str, Any] = {"conversations": conversations, "seed": seed + i, "max_seconds": max_seconds,
                                      "port": (ports or {}).get(vendor, 0), "log_requests": False}
            if vendor in DEMO_TOKEN:
                kwargs["token"] = DEMO_TOKEN[vendor]
            sim = simulator(vendor, **kwargs).start()
            started[vendor] = sim
            sim.finish_all()
        yield started
    finally:
        for sim in started.values():
            sim.stop()


def connection_env(sims: dict[str, VendorSimulator]) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{v.upper()}_DEFAULT": json.dumps(s.connection(f"{v}_default")) for v, s in sims.items()}


def airflow_env(home: Path, output: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "CONVERSATIONS_EXPORT_ROOT": output.as_uri(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def standalone_env(home: Path, output: Path, port: int) -> dict[str, str]:
    """Environment for ``airflow standalone`` on 127.0.0.1:``port`` (used by ``make airflow`` and the e2e tests).

    The api-server's base URL must match the port: workers reach the execution API through it, and tasks
    fail before running any code if it points elsewhere.
    """
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        **airflow_env(home, output),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@dataclass
class Row:
    vendor: str
    start: datetime
    end: datetime
    count: int
    pages: int
    seconds: float
    uri: str
    #: Field holding the conversation id in the exported records (``id`` once normalized).
    id_field: str


def _read_ids(uri: str, id_field: str) -> list[str]:
    path = Path(uri.removeprefix("file://"))
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
    return [str(json.loads(line)[id_field]) for line in text.splitlines() if line.strip()]


def run_demo(home: Path, conversations: int, intervals: int, first: datetime) -> int:
    if home.exists():
        shutil.rmtree(home)
    output = home / "output"
    output.mkdir(parents=True)
    with simulators(conversations) as sims:
        os.environ.update(airflow_env(home / "airflow-home", output))
        os.environ.update(connection_env(sims))
        # Airflow reads its configuration when first imported: only now that AIRFLOW_HOME is set.
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        from airflow_provider_conversations.hooks import hook_class

        print(f"Scratch Airflow home {home / 'airflow-home'} (SQLite); exports to {output}", flush=True)
        db.initdb()
        bag = DagBag(dag_folder=str(EXAMPLES), safe_mode=False)
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        rows: list[Row] = []
        ends = [first + timedelta(hours=h + 1) for h in range(intervals)]
        for vendor, (dag_id, _time_key) in VENDOR_DAGS.items():
            dag = bag.dags[dag_id]
            raw_id = hook_class(vendor).id_field
            for logical in ends:
                run = dag.test(logical_date=logical)
                if run.state != "success":
                    print(f"{dag_id} @ {logical.isoformat()} ended {run.state}", file=sys.stderr)
                    return 1
                manifest = run.get_task_instance("export").xcom_pull(task_ids="export")
                rows.append(Row(vendor, datetime.fromisoformat(manifest["start"].replace("Z", "+00:00")),
                                datetime.fromisoformat(manifest["end"].replace("Z", "+00:00")),
                                manifest["count"], manifest["pages"], manifest["seconds"], manifest["uri"],
                                "id" if manifest["output_format"] == "normalized" else raw_id))
        others = ["conversations_all_vendors_hourly", "conversations_fanout_subwindows", "conversations_xcom_report"]
        other_states = {dag_id: bag.dags[dag_id].test(logical_date=ends[-1]).state for dag_id in others}

        print()
        print(f"{'vendor':<11} {'interval (UTC)':<24} {'conversations':>13} {'pages':>6} {'seconds':>8}  output")
        for r in rows:
            interval = f"{r.start:%m-%d %H:%M}-{r.end:%H:%M}"
            print(f"{r.vendor:<11} {interval:<24} {r.count:>13,} {r.pages:>6} {r.seconds:>8.2f}  "
                  f"{r.uri.removeprefix(output.as_uri() + '/')}")
        print()
        ok = True
        for vendor, (_dag_id, time_key) in VENDOR_DAGS.items():
            mine = [r for r in rows if r.vendor == vendor]
            exported: list[str] = []
            for r in mine:
                exported.extend(_read_ids(r.uri, r.id_field))
            truth = sims[vendor].ground_truth(ends[0] - timedelta(hours=1), ends[-1], time_key=time_key)
            exact = sorted(exported) == sorted(truth) and sum(r.count for r in mine) == len(truth)
            ok &= exact
            print(f"{vendor:<11} exported {len(exported):>5,} / ground truth {len(truth):>5,} ({time_key}): "
                  f"{'exact, no duplicates' if exact else 'MISMATCH'}")
        for dag_id, state in other_states.items():
            ok &= state == "success"
            print(f"{dag_id:<36} {state}")
        print()
        print("demo OK: every export equals the simulators' ground truth" if ok else "demo FAILED")
        return 0 if ok else 1


def run_standalone(home: Path, port: int, conversations: int) -> int:
    home.mkdir(parents=True, exist_ok=True)
    output = home / "output"
    output.mkdir(exist_ok=True)
    ports = {v: 8931 + i for i, v in enumerate(VENDOR_DAGS)}
    with simulators(conversations, ports=ports, max_seconds=24 * 3600) as sims:
        env = standalone_env(home / "airflow-home", output, port)
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        for vendor, sim in sims.items():
            conn = sim.connection(f"{vendor}_default")
            subprocess.run([airflow, "connections", "delete", f"{vendor}_default"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            subprocess.run([airflow, "connections", "add", f"{vendor}_default", "--conn-json", json.dumps(conn)],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        proc = subprocess.Popen([airflow, "standalone"], env=env, start_new_session=True)
        password_file = home / "airflow-home" / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 120
        while not password_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
        password = json.loads(password_file.read_text()).get("admin") if password_file.exists() else "(see log)"
        print(f"\nAirflow UI: http://127.0.0.1:{port}  login admin / {password}")
        print("Simulators: " + ", ".join(f"{v} {s.url}" for v, s in sims.items()))
        print("Connections <vendor>_default point at them; example DAGs are paused: unpause one in the UI.")
        print("Ctrl-C stops Airflow and the simulators.\n", flush=True)
        def interrupt(*_: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)  # `kill` stops everything too, not only Ctrl-C
        try:
            return proc.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the example DAGs once and check the exports")
    r.add_argument("--home", type=Path, default=REPO / ".scratch" / "demo")
    r.add_argument("--conversations", type=int, default=3000, help="per vendor, over 3 days")
    r.add_argument("--intervals", type=int, default=3, help="consecutive hourly intervals per vendor")
    r.add_argument("--first", default=(DEFAULT_START + timedelta(days=1)).isoformat(),
                   help="start of the first interval (ISO 8601)")
    s = sub.add_parser("standalone", help="airflow standalone with the simulators, until interrupted")
    s.add_argument("--home", type=Path, default=REPO / ".scratch" / "airflow")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--conversations", type=int, default=3000)
    a = p.parse_args(argv)
    if a.command == "run":
        first = datetime.fromisoformat(a.first).astimezone(UTC)
        return run_demo(a.home.resolve(), a.conversations, a.intervals, first)
    return run_standalone(a.home.resolve(), a.port, a.conversations)


if __name__ == "__main__":
    sys.exit(main())
