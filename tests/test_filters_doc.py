"""README.md's ElevenLabs filter list is the filter table, rendered: it cannot drift from what the hook accepts."""

from __future__ import annotations

import pytest

from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from tools import filters_doc


def test_readme_holds_the_filter_list_generated_from_the_table():
    text = filters_doc.README.read_text(encoding="utf-8")
    assert filters_doc.replaced(text, filters_doc.render()) == text, "README.md is stale: python -m tools.filters_doc"
    assert filters_doc.main(["--check"]) == 0


def test_every_filter_and_every_reserved_parameter_is_in_the_readme():
    block = filters_doc.render()
    for name in (*ElevenLabsHook.filter_set.names, *ElevenLabsHook.filter_set.reserved):
        assert f"| `{name}` |" in block or f"`{name}` (" in block, name


def test_a_changed_table_makes_the_check_fail(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{filters_doc.BEGIN}\nold\n{filters_doc.END}\noutro\n", encoding="utf-8")
    assert filters_doc.main(["--check", "--readme", str(readme)]) == 1
    assert "is stale: run python -m tools.filters_doc" in capsys.readouterr().err
    assert filters_doc.main(["--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == f"intro\n{filters_doc.render()}\noutro\n"
    assert filters_doc.main(["--check", "--readme", str(readme)]) == 0


def test_rendering_escapes_pipes_and_shows_types():
    table = FilterSet("V", (Filter("a", "int", minimum=1), Filter("b", "enum", choices=("x", "y"), repeatable=True,
                                                                   max_values=3),
                            Filter("c", pattern="x|y", pattern_hint="like 'p|q'", description="one | two")),
                      reserved={"cursor": "the hook pages"})
    assert filters_doc.render(table).splitlines()[4:9] == [
        "| `a` | integer >= 1 |  |",
        "| `b` | one of `x`, `y`, repeatable (a list is sent as repeated parameters; at most 3) |  |",
        "| `c` | string like 'p\\|q' | one \\| two |",
        "",
        "Set by the hook, refused in `filters` and `extra_params`: `cursor` (the hook pages).",
    ]


def test_markers_must_appear_once():
    with pytest.raises(ValueError, match="must hold the markers"):
        filters_doc.replaced("no markers here", "x")
