"""``make cluster``: a real CeleryExecutor Airflow on this machine, everything in one scratch folder.

    python -m tools.cluster run [--scratch .scratch/cluster] [--port 8080] [--workers 2] [--minutes 240]

Starts, all on 127.0.0.1 and on free ports (but the API's): a PostgreSQL 15 metadata database (Debian's binaries,
``initdb`` in the scratch folder, run as the ``postgres`` user when started as root, since PostgreSQL refuses to
run as root), a Redis broker (``redis-server``, nothing persisted), the five simulators, then ``airflow db
migrate``, the ``<vendor>_default`` connections, and api-server, scheduler, dag-processor, triggerer and two
Celery workers (``worker-1``, ``worker-2``: their Celery node names and the hostnames their task instances
record, via ``[core] hostname_callable`` = :func:`tools.hostname.node_name`). Prints the URL and login, and runs
until Ctrl-C, ``kill`` or ``--minutes``; then stops every process it started (each in its own process group).
Every process also runs under ``timeout``, so nothing outlives the bound even if this one is killed hard.

:func:`cluster` is the same as a context manager, for tests/e2e/test_cluster.py and benchmarks/cluster.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from airflow_provider_conversations.testing.server import VendorSimulator
from tools.demo import REPO, free_port, simulators, standalone_env

PG_BIN = Path(os.environ.get("CONVERSATIONS_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: Health the api-server must report before the cluster is handed over (workers are checked by their logs).
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


@dataclass
class Cluster:
    """A running cluster: its URL, an authenticated REST session, the simulators and where everything lives."""

    url: str
    scratch: Path
    home: Path
    output: Path
    logs: Path
    sims: dict[str, VendorSimulator]
    workers: list[str]
    #: The Redis the workers use as broker (``redis://127.0.0.1:<port>/0``), also usable as a shared storage.
    redis_url: str = ""
    password: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, f"{self.url}{path}", **kwargs)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return dict(run)
            time.sleep(1)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:g} s; logs in {self.logs}")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api("GET", f"/api/v2/dags/{dag_id}").status_code == 200:
                return
            time.sleep(1)
        raise AssertionError(f"{dag_id} was not parsed in {timeout:g} s; see {self.logs / 'dag-processor.log'}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]


class _Processes:
    """Processes started in their own sessions, stopped in reverse order (SIGTERM or the given signal, then
    SIGKILL after a grace period)."""

    def __init__(self, logs: Path, bound_seconds: int) -> None:
        self.logs = logs
        self.bound = bound_seconds
        self.started: list[tuple[str, subprocess.Popen[bytes], signal.Signals]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str],
              stop_signal: signal.Signals = signal.SIGTERM) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(["timeout", "-k", "20", str(self.bound), *argv], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((name, proc, stop_signal))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log tail:\n"
                                   + (self.logs / f"{name}.log").read_text(errors="replace")[-3000:])

    def stop_all(self, grace: float = 20) -> None:
        for _name, proc, sig in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        for _name, proc, _sig in reversed(self.started):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.started.clear()


def _as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's ``postgres`` user (or ``nobody``)."""
    if os.geteuid() != 0:
        return argv
    import pwd

    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--", *argv]
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


def _chown_for_postgres(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        for p in paths:
            os.chown(p, entry.pw_uid, entry.pw_gid)
        return


def _wait_until(what: str, check: Any, timeout: float, procs: _Processes, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        if check():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready after {timeout:g} s; logs in {procs.logs}")


def _start_postgres(folder: Path, procs: _Processes) -> int:
    data, sockets = folder / "pgdata", folder / "pgsock"
    data.mkdir()
    sockets.mkdir()
    _chown_for_postgres(data, sockets)
    subprocess.run(_as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust",
                                      "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
    port = free_port()
    # A scratch database: durability settings off, which makes `db migrate` several times faster.
    procs.start("postgres", _as_postgres_user([
        str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off", "-c", "max_connections=200"]), env=dict(os.environ),
        stop_signal=signal.SIGINT)  # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients

    def ready() -> bool:
        return subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
                              check=False).returncode == 0

    _wait_until("PostgreSQL", ready, 60, procs)
    subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
                   check=True)
    return port


def _start_redis(scratch: Path, procs: _Processes) -> int:
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed: run `make redis` (Debian's redis-server)")
    folder = scratch / "redis"
    folder.mkdir()
    port = free_port()
    procs.start("redis", [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                          "--save", "", "--appendonly", "no"], env=dict(os.environ))

    def ready() -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    _wait_until("Redis", ready, 30, procs)
    return port


def _importable(conn: dict[str, Any]) -> dict[str, Any]:
    """``airflow connections import`` wants ``extra`` as a JSON string, not the object the env-var form takes."""
    return {**conn, "extra": json.dumps(conn.get("extra") or {})}


def cluster_env(home: Path, output: Path, port: int, pg_port: int, redis_port: int,
                concurrency: int) -> dict[str, str]:
    """What every component shares: one metadata DB, one broker, one JWT secret and one Fernet key."""
    from cryptography.fernet import Fernet

    db = f"postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow"
    return {
        **standalone_env(home, output, port),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        # Redis redelivers a task still unacknowledged after this long; explicit (the default, 24 h, is logged
        # as a warning by every component), and longer than any export here.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        # Workers reach the execution API through this URL; a different secret per component would reject the
        # tokens the scheduler hands out (apache/airflow#59373).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tools.hostname.node_name",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
    }


@contextmanager
def cluster(scratch: Path, *, port: int | None = None, workers: int = 2, concurrency: int = 4,
            conversations: int = 800, seed: int = 21, max_seconds: float = 1800, latency_ms: float = 0.0,
            sim_ports: dict[str, int] | None = None, bound_seconds: int = 3600,
            extra_env: dict[str, str] | None = None, startup_seconds: float = 420,
            vendors: tuple[str, ...] | None = None) -> Iterator[Cluster]:
    """Start the whole cluster in ``scratch`` (emptied first), yield it healthy and logged in, always stop it.

    ``bound_seconds`` caps the life of every process (``timeout``), also if the caller dies without cleaning up;
    ``vendors`` limits the simulators (and connections) to those, e.g. for a benchmark of one vendor.
    """
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    # PostgreSQL runs as another user when we are root, and the checkout may sit in a folder only root can enter
    # (a clone in `mktemp -d`, mode 0700): its data and socket folders live in a temp folder of their own.
    pg_root = Path(tempfile.mkdtemp(prefix="conversations-cluster-pg-"))
    pg_root.chmod(0o711)
    home, output, logs = scratch / "airflow-home", scratch / "output", scratch / "logs"
    for p in (home, output, logs):
        p.mkdir()
    port = port or free_port()
    procs = _Processes(logs, bound_seconds)
    airflow = str(Path(sys.executable).parent / "airflow")
    names = [f"worker-{i + 1}" for i in range(workers)]
    try:
        pg_port = _start_postgres(pg_root, procs)
        redis_port = _start_redis(scratch, procs)
        with simulators(conversations, seed=seed, max_seconds=max_seconds, ports=sim_ports, only=vendors) as sims:
            if latency_ms:
                for sim in sims.values():
                    sim.latency_ms = latency_ms
            env = {**cluster_env(home, output, port, pg_port, redis_port, concurrency), **(extra_env or {})}
            with (logs / "setup.log").open("ab") as out:
                subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
                conns = scratch / "connections.json"
                conns.write_text(json.dumps({f"{v}_default": _importable(s.connection(f"{v}_default"))
                                             for v, s in sims.items()}))
                subprocess.run([airflow, "connections", "import", str(conns)], env=env, check=True, stdout=out,
                               stderr=subprocess.STDOUT)
                conns.unlink()  # it holds the simulators' API keys
            procs.start("api-server", [airflow, "api-server"], env)
            for component in ("scheduler", "dag-processor", "triggerer"):
                procs.start(component, [airflow, component], env)
            for name in names:
                procs.start(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h",
                                   "--concurrency", str(concurrency)],
                            {**env, "CONVERSATIONS_NODE_NAME": name,
                             "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
            c = Cluster(f"http://127.0.0.1:{port}", scratch, home, output, logs, sims, names,
                        redis_url=env["AIRFLOW__CELERY__BROKER_URL"])

            def healthy() -> bool:
                try:
                    health = requests.get(f"{c.url}/api/v2/monitor/health", timeout=5).json()
                except (requests.RequestException, ValueError):
                    return False
                return all(health.get(k, {}).get("status") == "healthy" for k in COMPONENTS)

            def workers_ready() -> bool:
                return all(f"{n}@" in (text := (logs / f"{n}.log").read_text(errors="replace"))
                           and " ready." in text for n in names)

            _wait_until("the api-server, scheduler, dag-processor and triggerer", healthy, startup_seconds, procs, 2)
            _wait_until("the Celery workers", workers_ready, startup_seconds, procs, 1)
            passwords = home / "simple_auth_manager_passwords.json.generated"
            c.password = json.loads(passwords.read_text())["admin"]
            token = requests.post(f"{c.url}/auth/token", json={"username": "admin", "password": c.password},
                                  timeout=30).json()["access_token"]
            c.session.headers["Authorization"] = f"Bearer {token}"
            yield c
    finally:
        procs.stop_all()
        shutil.rmtree(pg_root, ignore_errors=True)


def run(scratch: Path, port: int, workers: int, minutes: float, conversations: int) -> int:
    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    # `kill` stops everything too, not only Ctrl-C; and Ctrl-C also when started with SIGINT ignored (a shell's
    # background job), since Python then keeps it ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    sim_ports = {v: 8931 + i for i, v in enumerate(("parrotmob", "anyreach", "polyai", "elevenlabs", "replyful"))}
    bound = int(minutes * 60)
    print(f"Starting PostgreSQL, Redis, the simulators and Airflow (CeleryExecutor, {workers} workers) in {scratch}",
          flush=True)
    try:
        with cluster(scratch, port=port, workers=workers, conversations=conversations, max_seconds=24 * 3600,
                     sim_ports=sim_ports, bound_seconds=bound + 60) as c:
            print(f"\nAirflow UI: {c.url}  login admin / {c.password}")
            print(f"Celery workers: {', '.join(c.workers)}; logs of every process in {c.logs}")
            print(f"Redis (the broker; also a connection's rate_limit_storage): {c.redis_url}")
            print("Simulators: " + ", ".join(f"{v} {s.url}" for v, s in c.sims.items()))
            print("Connections <vendor>_default point at them; example DAGs are paused: unpause one in the UI "
                  "(conversations_day_fanout maps one day onto both workers).")
            print(f"Ctrl-C stops everything (and it stops by itself after {minutes:g} minutes).\n", flush=True)
            deadline = time.monotonic() + bound
            while time.monotonic() < deadline:
                time.sleep(2)
            print(f"{minutes:g} minutes are up: stopping.", flush=True)
    except KeyboardInterrupt:
        print("\nStopping every process the cluster started.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="start the cluster and keep it running until interrupted")
    r.add_argument("--scratch", type=Path, default=REPO / ".scratch" / "cluster")
    r.add_argument("--port", type=int, default=8080)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--minutes", type=float, default=240, help="stop by itself after this long")
    r.add_argument("--conversations", type=int, default=3000, help="per simulator, over 3 days")
    a = p.parse_args(argv)
    return run(a.scratch.resolve(), a.port, a.workers, a.minutes, a.conversations)


if __name__ == "__main__":
    sys.exit(main())
