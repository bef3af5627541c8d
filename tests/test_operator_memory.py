"""The object-storage export runs in constant memory: 10x the conversations, the same peak."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from typing import Any

import pendulum

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.testing.dataset import DEFAULT_START


def test_export_peak_memory_is_flat_in_the_number_of_conversations(sim, set_connection, tmp_path):
    s = sim("polyai", conversations=11_000, span=timedelta(hours=11), log_requests=False)
    set_connection("poly_mem", s.connection())

    def export(hours: int, dest: str) -> dict[str, Any]:
        op = ConversationsToObjectStorageOperator(
            task_id="export", conn_id="poly_mem", destination=f"file://{tmp_path}/{dest}/", page_size=200,
            output_format="normalized", exclude_fields=["turns"],
        )
        start = pendulum.instance(DEFAULT_START)
        result: dict[str, Any] = op.execute({"data_interval_start": start,
                                             "data_interval_end": start.add(hours=hours)})
        return result

    # Warm-up: imports, the simulator's cached selections, the connection lookup.
    export(1, "warm")
    export(10, "warm")

    def peak(hours: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            manifest = export(hours, f"measure-{hours}")
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return manifest["count"], top

    (small_n, small), (large_n, large) = peak(1), peak(10)
    assert large_n > 9 * small_n > 0
    # Per page (200 records), not per window: the same peak whatever the window holds, give or take noise.
    assert large < small * 1.3 + 256 * 1024, (small, large)
