"""`make demo` end to end, smaller: the example DAGs against the five simulators in a scratch SQLite Airflow.

Runs in a subprocess because the demo points AIRFLOW_HOME and the connections at its own scratch home.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_exports_equal_the_ground_truth_and_every_example_dag_succeeds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = subprocess.run(
        [sys.executable, "-m", "tools.demo", "run", "--home", str(tmp_path / "demo"),
         "--conversations", "600", "--intervals", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo exited {proc.returncode}\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    for vendor, key in [("polyai", "created"), ("elevenlabs", "created"), ("anyreach", "created"),
                        ("parrotmob", "created"), ("replyful", "updated")]:
        line = next(line for line in out.splitlines() if line.startswith(f"{vendor:<11} exported"))
        assert line.endswith(f"({key}): exact, no duplicates"), line
    for dag_id in ("conversations_all_vendors_hourly", "conversations_fanout_subwindows",
                   "conversations_xcom_report"):
        assert f"{dag_id:<36} success" in out
    assert out.rstrip().endswith("demo OK: every export equals the simulators' ground truth")
    assert len(list((tmp_path / "demo" / "output").rglob("conversations.jsonl.gz"))) >= 10
