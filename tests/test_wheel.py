"""The provider as users get it: the wheel built from this checkout, installed into a clean virtualenv with Airflow.

Everything else in the suite runs from the editable checkout, which hides packaging mistakes (a module or data file
left out, a missing ``py.typed``, an entry point typo). Here the checkout is only the source of the build and of
the example DAGs; the code under test is what the wheel installed into the virtualenv's site-packages.

Fast between runs: the virtualenv under ``.scratch/`` (Airflow and the provider's dependencies, pinned to what this
interpreter has, so uv takes them from its cache; and a migrated metadata DB to copy) is kept, keyed on the Python
and Airflow versions and the provider's dependency list; each run builds the wheel anew and reinstalls only it.

Uses only what the provider publishes: the entry point, ``get_provider_info()``, the connection types' hook class
names, the simulators' command line, and the example DAGs.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_conversations
from tests.helpers import assert_exactly_once, stop_process_group
from tests.wheel_contents import REPO, problems

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(1800)]

DISTRIBUTION = "airflow-provider-conversations"
VERSION = airflow_provider_conversations.__version__
EXAMPLES = REPO / "dags_examples"
SCRATCH = REPO / ".scratch"
CONN_TYPES = ("parrotmob", "anyreach", "polyai", "elevenlabs", "replyful")
#: Bumped when the way the virtualenv is made changes, so older ones are not reused.
RECIPE = 1
#: Prefix of the line a script run in the virtualenv prints its JSON result on.
RESULT = "wheel-test-result: "


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
         stdout_only: bool = False) -> str:
    """Run a command in its own process group and return its output (stdout and stderr, or only stdout); on
    timeout the whole group is killed. Fails with the output's tail when it exits non-zero."""
    shown = " ".join(a if len(a) < 100 else f"{a[:60]}...({len(a)} chars)" for a in cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE if stdout_only else subprocess.STDOUT,
                            text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        tail = ((err or "") + out)[-4000:]
        raise AssertionError(f"{shown} timed out after {timeout:g} s; output tail:\n{tail}") from None
    if proc.returncode != 0:
        tail = ((err or "") + out)[-4000:]
        raise AssertionError(f"{shown} exited {proc.returncode}; output tail:\n{tail}")
    return out


def _uv() -> str:
    from uv import find_uv_bin  # build[uv] in the test extra brings it

    return str(find_uv_bin())


@dataclass
class WheelVenv:
    root: Path
    wheel: Path
    #: A migrated SQLite metadata DB for this Airflow version, copied into each test's fresh AIRFLOW_HOME.
    template_db: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def airflow(self) -> str:
        return str(self.root / "bin" / "airflow")

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A clean environment: no PYTHONPATH, no AIRFLOW_* or connections of the test process, a scratch home."""
        return {
            "PATH": f"{self.root / 'bin'}{os.pathsep}{os.defpath}",
            "HOME": os.environ.get("HOME", str(home)),
            "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            **extra,
        }

    def home(self, path: Path, *, db: bool = False) -> Path:
        (path / "dags").mkdir(parents=True)
        if db:
            shutil.copy(self.template_db, path / "airflow.db")
        return path

    def python_json(self, code: str, home: Path, *args: str, timeout: float = 180) -> Any:
        """Run ``code`` (``sys.argv[1:]`` = ``args``) with the virtualenv's Python in isolated mode (-I: no
        PYTHONPATH, no script or working folder on sys.path) from a folder outside the checkout; ``code`` prints
        its result as one JSON line after :data:`RESULT`."""
        out = _run([self.python, "-I", "-c", code, *args], timeout=timeout, env=self.env(home), cwd=home)
        (line,) = [line for line in out.splitlines() if line.startswith(RESULT)] or [f"{RESULT}null"]
        result = json.loads(line.removeprefix(RESULT))
        assert result is not None, f"no result line in the output:\n{out[-4000:]}"
        return result


def _venv_key() -> str:
    """Python and Airflow versions and the provider's runtime dependencies: what the kept virtualenv depends on."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    airflow = importlib.metadata.version("apache-airflow")
    blob = json.dumps([RECIPE, sys.version, airflow, sorted(project["dependencies"])]).encode()
    return f"py{sys.version_info[0]}{sys.version_info[1]}-airflow-{airflow}-{hashlib.sha256(blob).hexdigest()[:12]}"


def _constraints(path: Path) -> Path:
    """This interpreter's installed versions (all but the provider), like an Airflow constraints file: the
    virtualenv gets the versions the suite is tested with, and uv takes them from its cache."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name != DISTRIBUTION:
            seen[name] = dist.version
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(seen.items())))
    return path


def _create(venv: WheelVenv) -> None:
    """A new virtualenv: this interpreter's Python, the wheel with its runtime dependencies (no extras, as
    ``pip install <wheel>`` gives a user), Airflow pinned to this interpreter's, and a migrated metadata DB."""
    uv = _uv()
    shutil.rmtree(venv.root, ignore_errors=True)
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv.root)], timeout=120)
    airflow_version = importlib.metadata.version("apache-airflow")
    constraints = _constraints(venv.root / "constraints.txt")
    _run([uv, "pip", "install", "-q", "-p", venv.python, "--constraints", str(constraints),
          f"apache-airflow=={airflow_version}", str(venv.wheel)], timeout=900)
    template = venv.home(venv.template_db.parent)
    _run([venv.airflow, "db", "migrate"], timeout=300, env=venv.env(template), cwd=template)
    (venv.root / ".ready").write_text(json.dumps({"airflow": airflow_version, "python": sys.version}))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built fresh from the checkout, and the wheel built from that sdist (as ``make dist`` does)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--installer", "uv", "--outdir", str(out), str(REPO)], timeout=300)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Iterator[WheelVenv]:
    SCRATCH.mkdir(exist_ok=True)
    key = _venv_key()
    root = SCRATCH / f"wheel-venv-{key}"
    with (SCRATCH / "wheel-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run of this test waits instead of sharing a half-made venv
        for old in SCRATCH.glob("wheel-venv-*"):
            if old.is_dir() and old != root:
                shutil.rmtree(old, ignore_errors=True)
        started = time.monotonic()
        venv = WheelVenv(root, wheel, root / "airflow-template" / "airflow.db")
        reused = (root / ".ready").exists()
        if not reused:
            _create(venv)
        # Only the provider is reinstalled, from this run's wheel; its dependencies stay.
        _run([_uv(), "pip", "install", "-q", "-p", venv.python, "--no-deps", "--reinstall", "--no-cache", str(wheel)],
             timeout=120)
        _run([_uv(), "pip", "check", "-q", "-p", venv.python], timeout=60)
        how = "reused" if reused else "created"
        print(f"wheel virtualenv {root.name}: {how}, provider reinstalled, in {time.monotonic() - started:.1f} s")
        yield venv


def test_the_wheel_holds_the_package_and_nothing_else(wheel):
    assert problems(wheel) == []


PROBE = r"""
import importlib, importlib.metadata, json, sys, sysconfig, warnings
warnings.simplefilter("ignore")
import airflow_provider_conversations as pkg

dist = importlib.metadata.distribution("airflow-provider-conversations")
(ep,) = [e for e in dist.entry_points if e.group == "apache_airflow_provider"]
info = ep.load()()

from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

provider = ProvidersManager().providers.get("airflow-provider-conversations")
runtime_hooks = ProvidersManagerTaskRuntime().hooks
hooks = {}
for entry in info["connection-types"]:
    conn_type = entry["connection-type"]
    hook_info = runtime_hooks.get(conn_type)
    module, _, name = entry["hook-class-name"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    hooks[conn_type] = {
        "declared": entry["hook-class-name"],
        "resolved": hook_info.hook_class_name if hook_info else None,
        "package": hook_info.package_name if hook_info else None,
        "class_conn_type": cls.conn_type,
        "default_conn_name": cls.default_conn_name,
        "file": sys.modules[module].__file__,
    }
modules = {}
for kind in ("hooks", "operators", "sensors", "triggers"):
    for group in info.get(kind, []):
        for module in group["python-modules"]:
            modules[module] = importlib.import_module(module).__file__

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print("wheel-test-result: " + json.dumps({
    "file": pkg.__file__,
    "version": pkg.__version__,
    "metadata_version": dist.version,
    "direct_url": dist.read_text("direct_url.json"),
    "purelib": sysconfig.get_paths()["purelib"],
    "sys_path": sys.path,
    "provider_version": provider.version if provider else None,
    "info_versions": info.get("versions"),
    "hooks": hooks,
    "modules": modules,
    "dag_ids": sorted(bag.dags),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
}))
"""


@pytest.fixture(scope="module")
def probe(venv: WheelVenv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the installed provider looks like from inside the virtualenv (one interpreter start for all of it)."""
    home = venv.home(tmp_path_factory.mktemp("probe-home"))
    result: dict[str, Any] = venv.python_json(PROBE, home, str(EXAMPLES))
    return result


def test_the_provider_is_imported_from_the_virtualenv_not_the_checkout(venv, probe):
    purelib = Path(probe["purelib"])
    assert purelib.is_relative_to(venv.root)
    assert Path(probe["file"]) == purelib / "airflow_provider_conversations" / "__init__.py"
    for entry in probe["sys_path"]:
        path = Path(entry or ".").resolve()
        assert not (path.is_relative_to(REPO) and not path.is_relative_to(venv.root)), f"checkout on sys.path: {entry}"
    # Installed from the wheel file, not from a folder (an editable or folder install records dir_info).
    assert "dir_info" not in (probe["direct_url"] or "")
    for file in [*probe["modules"].values(), *(h["file"] for h in probe["hooks"].values())]:
        assert Path(file).is_relative_to(purelib), file


def test_one_version_in_metadata_provider_info_and_providers_manager(probe):
    assert probe["version"] == probe["metadata_version"] == probe["provider_version"] == VERSION
    assert probe["info_versions"] == [VERSION]


def test_airflow_providers_list_shows_the_provider_and_its_version(venv, tmp_path):
    home = venv.home(tmp_path / "home")
    listed = json.loads(_run([venv.airflow, "providers", "list", "--output", "json"], timeout=180,
                             env=venv.env(home), cwd=home, stdout_only=True))
    (mine,) = [p for p in listed if p["package_name"] == DISTRIBUTION]
    assert mine["version"] == VERSION


def test_each_connection_type_resolves_to_its_hook(probe):
    assert sorted(probe["hooks"]) == sorted(CONN_TYPES)
    for conn_type, hook in probe["hooks"].items():
        assert hook["resolved"] == hook["declared"], conn_type
        assert hook["package"] == DISTRIBUTION
        assert hook["class_conn_type"] == conn_type
        assert hook["default_conn_name"] == f"{conn_type}_default"


def test_example_dags_import_in_a_dagbag(probe):
    assert probe["import_errors"] == {}
    assert len(probe["dag_ids"]) == len(list(EXAMPLES.glob("*.py")))
    assert "conversations_replyful_hourly" in probe["dag_ids"]


@contextlib.contextmanager
def _simulator_cli(venv: WheelVenv, home: Path, *args: str, max_seconds: int = 300) -> Iterator[dict[str, Any]]:
    """``python -m airflow_provider_conversations.testing`` from the virtualenv on 127.0.0.1, bounded by
    ``--max-seconds`` and always stopped; yields the JSON line it prints (url, connection)."""
    cmd = [venv.python, "-I", "-m", "airflow_provider_conversations.testing", "--port", "0",
           "--max-seconds", str(max_seconds), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=venv.env(home),
                            cwd=home, start_new_session=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("{"):
            raise AssertionError(f"simulator did not start: {line!r} (exit {proc.poll()})")
        started = json.loads(line)
        assert started["url"].startswith("http://127.0.0.1:")
        yield started
    finally:
        stop_process_group(proc, grace=15)


REPLYFUL_TOKEN = "rfl_test_wheel_0123456789"
#: The simulator's seeded data set rebuilt (not started) in the virtualenv: the ids an export of the window must hold.
GROUND_TRUTH = f"""
import json, sys
from datetime import datetime
from airflow_provider_conversations.testing import simulator

conversations, seed, start, end = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
sim = simulator("replyful", conversations=conversations, seed=seed, token={REPLYFUL_TOKEN!r})
ids = sim.ground_truth(datetime.fromisoformat(start), datetime.fromisoformat(end), time_key="updated")
print({RESULT!r} + json.dumps({{"id_field": sim.id_field, "ids": ids}}))
"""


def test_example_dag_export_against_a_shipped_simulator_is_exact(venv, tmp_path):
    """``airflow dags test`` of the Replyful example DAG, run by the installed wheel, against the Replyful simulator
    started from the wheel: the hour's object holds exactly the simulator's ground truth."""
    home = venv.home(tmp_path / "home", db=True)
    output = tmp_path / "output"
    output.mkdir()
    sim_args = ["--vendor", "replyful", "--conversations", "20000", "--seed", "18", "--token", REPLYFUL_TOKEN]
    start, end = "2026-11-18T00:00:00+00:00", "2026-11-18T01:00:00+00:00"
    with _simulator_cli(venv, home, *sim_args) as sim:
        env = venv.env(home, AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLES), CONVERSATIONS_EXPORT_ROOT=output.as_uri(),
                       AIRFLOW_CONN_REPLYFUL_DEFAULT=json.dumps(sim["connection"]))
        # The logical date is the end of the hour: CronDataIntervalTimetable runs [end - 1 h, end).
        log = _run([venv.airflow, "dags", "test", "conversations_replyful_hourly", end], timeout=300, env=env,
                   cwd=home)
    objects = sorted(output.rglob("*.jsonl.gz"))
    assert len(objects) == 1, f"expected one export object, found {objects}; log tail:\n{log[-4000:]}"
    (obj,) = objects
    assert "time_key=updated/start=2026-11-18T00:00:00Z/end=2026-11-18T01:00:00Z" in obj.as_posix()
    truth = venv.python_json(GROUND_TRUTH, home, "20000", "18", start, end)
    exported = [str(json.loads(line)[truth["id_field"]]) for line in gzip.decompress(obj.read_bytes()).splitlines()]
    assert len(truth["ids"]) > 200  # several pages of 100
    assert_exactly_once(exported, truth["ids"])
