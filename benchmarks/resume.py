"""Resumable exports, measured: an export of 200,000 conversations killed with SIGKILL at about 60% of its pages.

    python -m benchmarks.resume [--conversations 200000] [--page-size 100] [--every 100] [--repeats 3]

The PolyAI simulator runs in this process; every export runs in a fresh subprocess (as a task's process would),
with a file standing in for Airflow's task state store (same get/set/delete, written atomically). The
simulator's ``kill_after`` fault SIGKILLs the exporting process when it asks for the page after 60% of them;
the retry is a second subprocess with the same store. Reported: pages re-requested by the retry (target: at
most one checkpoint interval), the retry's time as a fraction of an uninterrupted run (target: at most 0.5),
the checkpoint overhead of an uninterrupted run against one with ``checkpoint_every_pages=None`` (target:
under 3%, medians of ``--repeats`` runs each), and whether the resumed object is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START = "2026-11-17T00:00:00Z"
END = "2026-11-20T00:00:00Z"


class FileStore:
    """Airflow's task state store API over one JSON file (the child side of the benchmark)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any) -> None:
        data = self._read()
        data[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def delete(self, key: str) -> None:
        data = self._read()
        data.pop(key, None)
        self.path.write_text(json.dumps(data))

    def clear(self) -> None:
        self.path.write_text("{}")


def child(spec: dict[str, Any]) -> None:
    """One export (run in a subprocess): prints its manifest as JSON."""
    import pendulum

    from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

    os.environ["AIRFLOW_CONN_POLYAI_BENCH"] = json.dumps(spec["connection"])
    op = ConversationsToObjectStorageOperator(
        task_id="export", conn_id="polyai_bench", destination=spec["destination"], page_size=spec["page_size"],
        checkpoint_every_pages=spec["every"])
    context = {"data_interval_start": pendulum.parse(START), "data_interval_end": pendulum.parse(END),
               "task_state_store": FileStore(Path(spec["store"]))}
    t0, c0 = time.perf_counter(), time.process_time()
    manifest = op.execute(context)
    print(json.dumps({"manifest": manifest, "seconds": time.perf_counter() - t0,
                      "cpu": time.process_time() - c0}), flush=True)


def export(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, float, float]:
    """Run one export in a fresh process; (manifest, or None if it was killed; seconds of its ``execute()``,
    not counting the interpreter's start and imports, which a worker pays with or without resuming)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.resume", "--child", json.dumps(spec)], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        if proc.returncode == -9:
            return None, float("nan"), float("nan")
        raise RuntimeError(f"export failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["manifest"], result["seconds"], result["cpu"]


def section(say: Callable[[str], None], conversations: int = 200_000, page_size: int = 100, every: int = 100,
            repeats: int = 3) -> dict[str, Any]:
    """The measurements, reported through ``say`` (markdown lines); returns the figures."""
    from airflow_provider_conversations.testing import Faults, simulator
    from airflow_provider_conversations.testing.dataset import DEFAULT_START

    sim = simulator("polyai", conversations=conversations, span=timedelta(days=3), start=DEFAULT_START,
                    max_seconds=3600, log_requests=False, environments=["live"]).start()
    try:
        with tempfile.TemporaryDirectory(prefix="resume-bench-") as scratch:
            base = Path(scratch)

            def spec(name: str, every_pages: int | None) -> dict[str, Any]:
                return {"connection": sim.connection("polyai_bench"), "destination": (base / name).as_uri() + "/",
                        "page_size": page_size, "every": every_pages, "store": str(base / f"{name}.store.json")}

            def object_of(manifest: dict[str, Any]) -> bytes:
                return Path(manifest["uri"].removeprefix("file://")).read_bytes()

            plain, checkpointed, plain_cpu, checkpointed_cpu = [], [], [], []
            reference: dict[str, Any] | None = None
            for i in range(repeats):  # interleaved, so drift in the machine's load hits both alike
                _m, s, c = export(spec(f"plain{i}", None))
                plain.append(s)
                plain_cpu.append(c)
                reference, s, c = export(spec(f"ckpt{i}", every))
                checkpointed.append(s)
                checkpointed_cpu.append(c)
            assert reference is not None
            pages = reference["pages"]
            uninterrupted = statistics.median(checkpointed)
            overhead = statistics.median(checkpointed) / statistics.median(plain) - 1
            cpu_overhead = statistics.median(checkpointed_cpu) / statistics.median(plain_cpu) - 1

            kill_after = pages * 6 // 10
            faults = Faults(kill_after=sim.stats.ok_pages + kill_after)
            sim.faults = faults
            killed, _, _ = export(spec("killed", every))
            sim.faults = Faults()
            if killed is not None or not faults.killed:
                raise RuntimeError("the first try was not killed")
            before = sim.stats.ok_pages
            retried, retry_seconds, _ = export(spec("killed", every))
            assert retried is not None
            retry_pages = sim.stats.ok_pages - before
            resumed = retried["resumed_from_page"]
            re_requested = kill_after - (resumed - 1) if resumed else kill_after
            identical = object_of(retried) == object_of(reference)
    finally:
        sim.stop()
    ratio = retry_seconds / uninterrupted
    say(f"Resumable export: {conversations:,} PolyAI conversations, page size {page_size}, {pages} pages, "
        f"checkpoint every {every} pages, each export in its own process; killed (SIGKILL) when asking for page "
        f"{kill_after + 1}; medians of {repeats} uninterrupted runs each way. Times are of ``execute()`` (the "
        "process start and imports, the same for every try, are left out).")
    say("")
    say("| measure | value | target |")
    say("|---|---:|---|")
    say(f"| uninterrupted, no checkpoints | {statistics.median(plain):.2f} s | |")
    say(f"| uninterrupted, checkpoint every {every} pages | {uninterrupted:.2f} s "
        f"({reference['checkpoints']} checkpoints) | |")
    say(f"| checkpoint overhead, wall time | {overhead * 100:+.1f}% | < 3% |")
    say(f"| checkpoint overhead, CPU time of the exporting process | {cpu_overhead * 100:+.1f}% | < 3% |")
    say(f"| (each run, wall: without {', '.join(f'{x:.2f}' for x in plain)} s; with "
        f"{', '.join(f'{x:.2f}' for x in checkpointed)} s) | | |")
    say(f"| (each run, CPU: without {', '.join(f'{x:.2f}' for x in plain_cpu)} s; with "
        f"{', '.join(f'{x:.2f}' for x in checkpointed_cpu)} s) | | |")
    say(f"| killed try | {kill_after} pages, then SIGKILL | |")
    say(f"| retry | {retry_seconds:.2f} s, resumed from page {resumed}, {retry_pages} pages | |")
    say(f"| pages re-requested by the retry | {re_requested} | <= {every} |")
    say(f"| retry time / uninterrupted | {ratio:.2f} | <= 0.5 |")
    say(f"| resumed object byte-identical | {identical} | True |")
    say("")
    return {"pages": pages, "overhead": overhead, "cpu_overhead": cpu_overhead, "re_requested": re_requested,
            "retry_ratio": ratio, "identical": identical, "resumed_from_page": resumed}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=200_000)
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(json.loads(a.child))
        return 0
    figures = section(lambda text="": print(text, flush=True), a.conversations, a.page_size, a.every, a.repeats)
    ok = (figures["identical"] and figures["re_requested"] <= a.every and figures["retry_ratio"] <= 0.5
          and figures["overhead"] < 0.03)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
