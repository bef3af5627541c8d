"""Secrets: a DAG run with failing and succeeding tasks of several vendors never shows the API keys anywhere.

One ``dag.test()`` of one DAG (a re-parse of the dags folder costs seconds) runs, side by side:

- ``unauthorized``: PolyAI answers 401 (the connection's key is not the vendor's);
- ``exhausted``: every ElevenLabs request fails with a 500 until the retries are exhausted;
- ``export``: a Replyful export to ``file://`` (gzip), with a templated connection id and filters;
- ``pull``: a ParrotMob ``ConversationsOperator`` returning records to XCom;
- ``wait``: a deferrable sensor on Anyreach (``pat_`` token) that defers until the window settles;
- ``insecure``: an export through a connection with ``verify_ssl=false`` (its warning must reach the log);
- ``leak``: a task that logs a connection's password on purpose (Airflow must mask it).

Then every place a key could end up is read back: the captured task output and any log file under
``$AIRFLOW_HOME/logs``, the exceptions the tasks raised, every XCom and rendered template field of the run in
the metadata DB, every exported file (decompressed) and the trigger's serialised kwargs and events.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from sqlalchemy import select

from airflow_provider_conversations.hooks.base import ConversationsHook
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.sensors.conversations import ConversationsSensor
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.triggers.conversations import ConversationsTrigger
from airflow_provider_conversations.windows import Window
from tests.test_sensor import in_progress_ids

#: Every key below contains it: one search finds any of them, whole or in part.
NEEDLE = "0123456789abcdef"
TOKEN = f"SECRET-TOKEN-{NEEDLE}"
KEYS = {
    "polyai": TOKEN,
    "elevenlabs": TOKEN,
    "replyful": f"rfl_test_SECRET{NEEDLE}",
    "parrotmob": TOKEN,
    "anyreach": f"pat_SECRET-TOKEN-{NEEDLE}",
}
HOUR = Window(DEFAULT_START + timedelta(hours=1), DEFAULT_START + timedelta(hours=2))
FAST = '{"max_attempts": 2, "backoff": 0.01, "backoff_max": 0.02}'

SOURCE = '''
import logging

import pendulum
from airflow.sdk import DAG, BaseHook, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.sensors.conversations import ConversationsSensor

with DAG(
    dag_id="conversations_secrets",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    params={"replyful_conn": "secrets_replyful", "status": "resolved"},
) as dag:
    ConversationsOperator(task_id="unauthorized", conn_id="secrets_polyai", hook_params=FAST)
    ConversationsToObjectStorageOperator(task_id="exhausted", conn_id="secrets_elevenlabs", destination="LAKE/",
                                         hook_params=FAST)
    ConversationsToObjectStorageOperator(
        task_id="export", conn_id="{{ params.replyful_conn }}", filters={"status": ["{{ params.status }}"]},
        destination="LAKE/", output_format="normalized", hook_params=FAST,
    )
    ConversationsOperator(task_id="pull", conn_id="secrets_parrotmob", page_size=50, hook_params=FAST)
    ConversationsSensor(task_id="wait", conn_id="secrets_anyreach", settled=True, deferrable=True,
                        poke_interval=0.3, timeout=60, hook_params=FAST)
    ConversationsToObjectStorageOperator(task_id="insecure", conn_id="secrets_insecure", destination="LAKE/",
                                         compression=None, hook_params=FAST)

    @task
    def leak():
        password = BaseHook.get_connection("secrets_polyai").password
        logging.getLogger("airflow.task").info("the PolyAI password is %s", password)
        print(f"printed: the PolyAI password is {password}")

    leak()
'''


class Recorder:
    """Everything the run produced that could hold a key, gathered while it runs."""

    def __init__(self) -> None:
        self.exceptions: dict[str, BaseException] = {}
        self.trigger_kwargs: list[dict[str, Any]] = []
        self.trigger_events: list[Any] = []
        #: conn_id -> ``requests.Session.verify`` of every hook session the run opened.
        self.verify: dict[str, Any] = {}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Wrap the task entry points and the trigger: dag.test() runs them in this process."""
    rec = Recorder()

    def record_failures(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            except Exception as exc:
                if type(exc).__name__ != "TaskDeferred":
                    rec.exceptions[self.task_id] = exc
                raise

        monkeypatch.setattr(cls, name, wrapper)

    for cls in (ConversationsOperator, ConversationsToObjectStorageOperator, ConversationsSensor):
        record_failures(cls, "execute")
    record_failures(ConversationsSensor, "execute_complete")

    serialize, run = ConversationsTrigger.serialize, ConversationsTrigger.run

    def serialize_and_record(self: ConversationsTrigger) -> tuple[str, dict[str, Any]]:
        path, kwargs = serialize(self)
        rec.trigger_kwargs.append(kwargs)
        return path, kwargs

    async def run_and_record(self: ConversationsTrigger) -> Any:
        async for event in run(self):
            rec.trigger_events.append(event.payload)
            yield event

    get_conn = ConversationsHook.get_conn

    def get_conn_and_record(self: ConversationsHook) -> Any:
        session = get_conn(self)
        rec.verify[self.conn_id] = session.verify
        return session

    monkeypatch.setattr(ConversationsHook, "get_conn", get_conn_and_record)
    monkeypatch.setattr(ConversationsTrigger, "serialize", serialize_and_record)
    monkeypatch.setattr(ConversationsTrigger, "run", run_and_record)
    return rec


class TaskLogFiles(logging.Handler):
    """Task log files as Airflow's supervisor writes them, for a dag.test() that runs its tasks in this process.

    In a deployment the supervisor writes each task's log records, and every line the task prints, to
    ``$AIRFLOW_HOME/logs/dag_id=.../task_id=.../attempt=N.log`` through Airflow's own log processors, which
    replace every secret registered with the masker by ``***``. dag.test() runs tasks in-process and writes no
    such file; this handler (on the root logger) and :func:`task_log_files` (on stdout) put the same records and
    lines through the same processors (``airflow.sdk.log.logging_processors``) into the same layout.
    """

    def __init__(self, root: Path, dag_id: str) -> None:
        super().__init__(logging.DEBUG)
        self.root = root / f"dag_id={dag_id}"
        self.task_id = "_dag_test"  # records before the first task starts
        self._loggers: dict[str, Any] = {}
        self._files: list[Any] = []

    def _logger(self) -> Any:
        import structlog
        from airflow.sdk.log import logging_processors

        if self.task_id not in self._loggers:
            path = self.root / f"task_id={self.task_id}" / "attempt=1.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            f = path.open("wb")
            self._files.append(f)
            self._loggers[self.task_id] = structlog.wrap_logger(
                structlog.BytesLogger(f), processors=logging_processors(json_output=True), logger_name="task")
        return self._loggers[self.task_id]

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock
        message = record.getMessage()
        if message.startswith("[DAG TEST] starting task_id=") and record.args:
            self.task_id = str(record.args[0])  # type: ignore[index]
        log = self._logger()
        getattr(log, record.levelname.lower(), log.info)(message, logger=record.name)

    def write_stdout(self, text: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            for line in text.splitlines():
                if line.strip():
                    self._logger().info(line, logger="task.stdout")

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


class _Tee:
    """stdout that also goes to the task log files (what the supervisor reads from a task's stdout)."""

    def __init__(self, stream: Any, logs: TaskLogFiles) -> None:
        self._stream, self._logs = stream, logs

    def write(self, text: str) -> int:
        self._logs.write_stdout(text)
        return int(self._stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def task_log_files(dag_id: str) -> Iterator[Path]:
    """Write task log files under ``$AIRFLOW_HOME/logs`` while the block runs; yields the DAG's log folder.

    Use it inside the test body: pytest re-installs its own ``sys.stdout`` after fixture setup.
    """
    handler = TaskLogFiles(Path(os.environ["AIRFLOW_HOME"]) / "logs", dag_id)
    root = logging.getLogger()
    level, stdout = root.level, sys.stdout
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sys.stdout = _Tee(stdout, handler)  # type: ignore[assignment]
    try:
        yield handler.root
    finally:
        sys.stdout = stdout
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def exception_text(exc: BaseException) -> str:
    """The message, repr and full traceback of an exception and every exception chained to it."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *(str(a) for a in current.args)]
        current = current.__cause__ or current.__context__
    parts += traceback.format_exception(exc)
    return "\n".join(parts)


def run_rows(run: Any) -> dict[str, list[Any]]:
    """XComs, rendered template fields and task instances of the run, from the metadata DB."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == run.dag_id,
                                                         XComModel.run_id == run.run_id)).all()
        rtifs = session.scalars(select(RTIF).where(RTIF.dag_id == run.dag_id, RTIF.run_id == run.run_id)).all()
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == run.dag_id,
                                                         TaskInstance.run_id == run.run_id)).all()
        return {
            "xcom": [(x.task_id, x.key, XComModel.deserialize_value(x)) for x in xcoms],
            "rendered": [(r.task_id, r.rendered_fields) for r in rtifs],
            "ti": [(t.task_id, t.state, t.next_kwargs) for t in tis],
        }


def files_under(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield path, gzip.decompress(data) if path.name.endswith(".gz") else data


def test_no_key_reaches_logs_exceptions_xcom_rendered_fields_files_or_the_trigger(
    sim, set_connection, load_dag, tmp_path, logs, recorder, monkeypatch
):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # so verification shows as True, not a bundle path
        monkeypatch.delenv(name, raising=False)
    poly = sim("polyai", conversations=50, token="the-vendors-own-key")  # our key is not this one: 401
    eleven = sim("elevenlabs", conversations=50, token=KEYS["elevenlabs"], faults=Faults(fail_after=0))
    reply = sim("replyful", conversations=600, span=timedelta(hours=3), token=KEYS["replyful"])
    parrot = sim("parrotmob", conversations=600, span=timedelta(hours=3), token=KEYS["parrotmob"])
    anyreach = sim("anyreach", conversations=600, span=timedelta(hours=3), token=KEYS["anyreach"], seed=3)
    set_connection("secrets_polyai", poly.connection(token=KEYS["polyai"]))
    set_connection("secrets_elevenlabs", eleven.connection())
    set_connection("secrets_replyful", reply.connection())
    set_connection("secrets_parrotmob", parrot.connection())
    set_connection("secrets_anyreach", anyreach.connection())
    insecure = parrot.connection()
    insecure["extra"] = {**insecure["extra"], "verify_ssl": "false"}
    set_connection("secrets_insecure", insecure)
    assert in_progress_ids(anyreach, "secrets_anyreach", HOUR), "the sensor must have to wait"

    lake = tmp_path / "lake"
    dag = load_dag("conversations_secrets", SOURCE.replace("LAKE", f"file://{lake}").replace("FAST", FAST))

    stop = threading.Event()

    def finish_once_the_trigger_has_checked() -> None:
        while len(anyreach.requests) < 2 and not stop.wait(0.05):
            pass  # the worker's first check, then the trigger's first
        if not stop.wait(0.5):
            anyreach.finish_all()

    finisher = threading.Thread(target=finish_once_the_trigger_has_checked, daemon=True)
    finisher.start()
    try:
        with task_log_files("conversations_secrets") as dag_logs:
            run = dag.test(logical_date=pendulum.instance(HOUR.end))
    finally:
        stop.set()
        finisher.join()
    output = logs()
    rows = run_rows(run)
    states = {task_id: state for task_id, state, _ in rows["ti"]}

    # The run did what the scan relies on: two failures, five successes, a deferral, files, XComs, logs.
    assert states == {"unauthorized": "failed", "exhausted": "failed", "export": "success", "pull": "success",
                      "wait": "success", "insecure": "success", "leak": "success"}
    assert sorted(recorder.exceptions) == ["exhausted", "unauthorized"]
    assert "PolyAI rejected the API key of connection 'secrets_polyai'" in str(recorder.exceptions["unauthorized"])
    assert "failed after 2 attempts" in str(recorder.exceptions["exhausted"])
    assert eleven.stats.faults["permanent 500"] == 2
    assert len(recorder.trigger_kwargs) == 1
    assert len(recorder.trigger_events) == 1
    assert recorder.trigger_events[0]["status"] == "success"
    xcom = {(task_id, key): value for task_id, key, value in rows["xcom"]}
    resolved = reply.ground_truth(HOUR.start, HOUR.end, status="resolved")
    assert xcom[("export", "return_value")]["count"] == len(resolved) > 0
    assert len(xcom[("pull", "return_value")]) == len(parrot.ground_truth(HOUR.start, HOUR.end)) > 0
    assert xcom[("wait", "return_value")]["in_progress"] == 0
    rendered = dict(rows["rendered"])
    assert rendered["export"]["conn_id"] == "secrets_replyful"
    assert rendered["export"]["filters"] == {"status": ["resolved"]}
    exported = list(files_under(lake))
    assert len(exported) == 2  # export (gzip) and insecure (plain); exhausted left nothing
    log_root = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    task_log = {p.parent.name.removeprefix("task_id="): data.decode() for p, data in files_under(dag_logs)}
    assert set(states) <= set(task_log)
    assert "rejected the API key of connection 'secrets_polyai'" in task_log["unauthorized"]
    assert "failed after 2 attempts" in task_log["exhausted"]
    assert "check 2: Anyreach window" in task_log["wait"]  # the trigger's own check, logged inside the task

    # Airflow masks the connection password as a secret: the task that logs and prints it shows *** instead.
    assert "the PolyAI password is ***" in task_log["leak"]
    assert "printed: the PolyAI password is ***" in task_log["leak"]

    # The key appears nowhere: not in any task log file, and not in anything the provider wrote, returned or
    # raised. (dag.test()'s raw console output is not masked by Airflow: there only the leak task's own two lines
    # may show it, and nothing else may.)
    deliberate = ("the PolyAI password is ", "printed: the PolyAI password is ")
    console = "\n".join(line for line in output.splitlines() if not any(d in line for d in deliberate))
    assert sum(any(d in line for d in deliberate) for line in output.splitlines()) >= 2
    places: dict[str, str] = {
        "console output (except the leak task's own lines)": console,
        "exceptions": "\n".join(exception_text(e) for e in recorder.exceptions.values()),
        "XCom": json.dumps(rows["xcom"], default=str),
        "rendered template fields": json.dumps(rows["rendered"], default=str),
        "task instances (next_kwargs)": json.dumps(rows["ti"], default=str),
        "trigger kwargs": json.dumps(recorder.trigger_kwargs, default=str),
        "trigger events": json.dumps(recorder.trigger_events, default=str),
        **{f"exported {p.relative_to(lake)}": data.decode() for p, data in exported},
        **{f"log file {p.relative_to(log_root)}": data.decode("utf-8", "replace")
           for p, data in files_under(log_root)},
    }
    leaks = {where: text.count(NEEDLE) for where, text in places.items() if NEEDLE in text}
    assert leaks == {}, f"a key leaked into: {leaks}"
    assert not any(key in text for key in KEYS.values() for text in places.values())

    # TLS: verification stays on unless the connection says verify_ssl=false, and then the task log says so.
    warning = (f"TLS certificate verification is OFF for connection 'secrets_insecure' (extra verify_ssl=false); "
               f"responses from {parrot.url} are not authenticated")
    assert warning in task_log["insecure"]
    assert [t for t, text in task_log.items() if "TLS certificate verification is OFF" in text] == ["insecure"]
    assert recorder.verify == {"secrets_polyai": True, "secrets_elevenlabs": True, "secrets_replyful": True,
                               "secrets_parrotmob": True, "secrets_anyreach": True, "secrets_insecure": False}
