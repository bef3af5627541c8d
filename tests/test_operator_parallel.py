"""max_parallel on the operators: sub-windows fetched at once, written back as a sequential export would be."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.hooks import hook_class
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tests.helpers import assert_exactly_once

START, END = DEFAULT_START, DEFAULT_START + timedelta(hours=12)
BOUNDED = ("anyreach", "polyai", "elevenlabs", "replyful")


def export(tmp_path: Path, name: str, conn_id: str, **kwargs: object) -> tuple[dict, bytes]:
    op = ConversationsToObjectStorageOperator(
        task_id=name, conn_id=conn_id, destination=f"file://{tmp_path}/{name}/", page_size=20,
        start=START.isoformat(), end=END.isoformat(), **kwargs,
    )
    manifest = op.execute({})
    return manifest, Path(manifest["uri"].removeprefix("file://")).read_bytes()


@pytest.mark.parametrize("vendor", BOUNDED)
def test_parallel_export_is_byte_identical_to_the_sequential_one(sim, set_connection, tmp_path, vendor):
    s = sim(vendor, conversations=1500, seed=4)
    set_connection(f"{vendor}_default", s.connection(f"{vendor}_default"))
    sequential, seq_bytes = export(tmp_path, "seq", f"{vendor}_default")
    parallel, par_bytes = export(tmp_path, "par", f"{vendor}_default", max_parallel=6)
    assert par_bytes == seq_bytes  # same records, same order: parts are put back in walk order
    field = hook_class(vendor).id_field
    got = [str(orjson.loads(line)[field]) for line in gzip.decompress(par_bytes).splitlines()]
    assert_exactly_once(got, s.ground_truth(START, END))
    assert parallel["count"] == sequential["count"] == len(got) > 100
    assert parallel["requests"] > sequential["requests"]  # 24 sub-windows, each with its own last page


def test_parallel_xcom_result_equals_the_sequential_one(sim, set_connection):
    s = sim("elevenlabs", conversations=1500, seed=4)
    set_connection("el", s.connection("el"))

    def pull(**kwargs: object) -> list[dict]:
        return ConversationsOperator(task_id="pull", conn_id="el", page_size=20, start=START.isoformat(),
                                     end=END.isoformat(), **kwargs).execute({})

    assert pull(max_parallel=5) == pull()


@pytest.mark.parametrize("value", [0, 65, True, "8", 2.5])
def test_max_parallel_is_validated_at_parse_time(value):
    with pytest.raises(ConfigurationError) as err:
        ConversationsOperator(task_id="t", conn_id="c", max_parallel=value)
    assert str(err.value) == (
        f"ConversationsOperator 't': max_parallel={value!r} is not valid; expected an integer from 1 to 64"
    )


def test_max_parallel_needs_server_side_bounds():
    with pytest.raises(ConfigurationError, match="max_parallel=4 needs server-side time bounds, which ParrotMob"):
        ConversationsToObjectStorageOperator(task_id="t", conn_id="c", vendor="parrotmob", destination="/tmp/x/",
                                             max_parallel=4)
