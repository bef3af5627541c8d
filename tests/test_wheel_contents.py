"""The wheel-contents check (``make dist``, tests/test_wheel.py) finds each packaging mistake it is there for."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from tests.wheel_contents import ENTRY_POINT, PACKAGE, REPO, checkout_version, package_files, problems

VERSION = checkout_version()
DIST_INFO = f"{PACKAGE}-{VERSION}.dist-info"


def fake_wheel(tmp_path: Path, *, drop: str | None = None, add: dict[str, str] | None = None,
               version: str = VERSION, entry_point: str = ENTRY_POINT) -> Path:
    """A wheel as setuptools would build it from the checkout, give or take one mistake."""
    path = tmp_path / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(package_files()):
            if name != drop:
                zf.write(REPO / name, name)
        zf.writestr(f"{DIST_INFO}/METADATA", f"Metadata-Version: 2.4\nName: airflow-provider-conversations\n"
                                              f"Version: {version}\n\nREADME\n")
        zf.writestr(f"{DIST_INFO}/entry_points.txt", f"[apache_airflow_provider]\nprovider_info = {entry_point}\n")
        for name, text in (add or {}).items():
            zf.writestr(name, text)
    return path


def test_a_faithful_wheel_has_no_problem(tmp_path):
    assert problems(fake_wheel(tmp_path)) == []


def test_the_checkout_has_the_files_the_package_needs():
    files = package_files()
    assert f"{PACKAGE}/py.typed" in files
    assert f"{PACKAGE}/get_provider_info.py" in files
    assert f"{PACKAGE}/testing/__main__.py" in files
    assert not any("__pycache__" in f for f in files)


def test_a_module_left_out_is_named(tmp_path):
    (problem,) = problems(fake_wheel(tmp_path, drop=f"{PACKAGE}/testing/server.py"))
    assert problem.startswith(f"{PACKAGE}/testing/server.py: in the checkout, not in the wheel")
    assert "package discovery" in problem


def test_a_data_file_left_out_is_named(tmp_path):
    """A checkout whose simulators read a data file that no package-data rule ships."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / PACKAGE, checkout / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / PACKAGE / "testing" / "names.json").write_text("[]")
    (problem,) = problems(fake_wheel(tmp_path), root=checkout)
    assert problem == f"{PACKAGE}/testing/names.json: in the checkout, not in the wheel (no package-data ships it)"


def test_missing_py_typed_is_named(tmp_path):
    found = problems(fake_wheel(tmp_path, drop=f"{PACKAGE}/py.typed"))
    assert any("py.typed is missing" in p for p in found)


@pytest.mark.parametrize("name", [
    "tests/test_operators.py", "benchmarks/run.py", "tools/demo.py", "dags_examples/polyai_hourly.py",
    ".scratch/x.py", f"{PACKAGE}/__pycache__/windows.cpython-311.pyc", "conftest.py",
])
def test_files_that_are_not_the_package_are_named(tmp_path, name):
    found = problems(fake_wheel(tmp_path, add={name: ""}))
    assert found
    assert all(p.startswith(name) for p in found)


def test_a_stale_module_is_named(tmp_path):
    (problem,) = problems(fake_wheel(tmp_path, add={f"{PACKAGE}/hooks/old.py": ""}))
    assert "in the wheel, not in the checkout" in problem


def test_version_and_entry_point_must_match_the_checkout(tmp_path):
    (problem,) = problems(fake_wheel(tmp_path, version="0.0.1"))
    assert "METADATA" in problem
    (problem,) = problems(fake_wheel(tmp_path, entry_point=f"{PACKAGE}.get_provider_info:get_provider_inf"))
    assert "entry point" in problem
