"""What the wheel must and must not hold, checked against the checkout it was built from.

Used by ``make dist`` and by tests/test_wheel.py::

    python -m tests.wheel_contents dist/airflow_provider_conversations-*.whl    # lists the files, exit 1 on a problem

The wheel holds the package and its ``.dist-info`` only: every file of ``airflow_provider_conversations/`` in the
checkout (a module that package discovery did not pick up, or a data file that no package-data rule ships, shows
up here as missing), ``py.typed``, the provider entry point, and nothing else:
no tests, benchmarks, tools, example DAGs, scratch folders, byte code, or a stale file the checkout no longer has.
"""

from __future__ import annotations

import ast
import configparser
import sys
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "airflow_provider_conversations"
DISTRIBUTION = "airflow-provider-conversations"
ENTRY_POINT = f"{PACKAGE}.get_provider_info:get_provider_info"
REPO = Path(__file__).resolve().parent.parent
#: Folders of the repository that never belong in the wheel (the example DAGs are recipes to copy, shipped in
#: the sdist and the repository, not installed into site-packages).
NOT_SHIPPED = ("tests", "benchmarks", "tools", "dags_examples", ".scratch", "build", "dist", ".venv")


def checkout_version(root: Path = REPO) -> str:
    """``__version__`` as written in the checkout's ``__init__.py`` (read, not imported)."""
    tree = ast.parse((root / PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ValueError(f"no __version__ in {root / PACKAGE / '__init__.py'}")


def package_files(root: Path = REPO) -> set[str]:
    """Every file of the package in the checkout, as wheel paths: no byte code, no hidden files."""
    out = set()
    for path in (root / PACKAGE).rglob("*"):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        out.add(rel.as_posix())
    return out


def problems(wheel: Path, root: Path = REPO) -> list[str]:
    """Everything wrong with ``wheel`` as a build of the checkout at ``root`` (empty when it is right)."""
    found: list[str] = []
    version = checkout_version(root)
    dist_info = f"{PACKAGE}-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        metadata = zf.read(f"{dist_info}/METADATA").decode() if f"{dist_info}/METADATA" in names else ""
        entry_points = (zf.read(f"{dist_info}/entry_points.txt").decode()
                        if f"{dist_info}/entry_points.txt" in names else "")
    if not metadata:
        found.append(f"no {dist_info}/METADATA: the wheel is not version {version} of the checkout")
    for name in names:
        parts = PurePosixPath(name).parts
        if parts[0] in NOT_SHIPPED:
            found.append(f"{name}: {parts[0]}/ is not part of the package")
        elif parts[0] not in (PACKAGE, dist_info):
            found.append(f"{name}: outside {PACKAGE}/ and {dist_info}/")
        if "__pycache__" in parts or name.endswith((".pyc", ".pyo")):
            found.append(f"{name}: byte code")
    shipped = {n for n in names if n.startswith(f"{PACKAGE}/")}
    expected = package_files(root)
    for name in sorted(expected - shipped):
        hint = " (package discovery missed its folder)" if name.endswith(".py") else " (no package-data ships it)"
        found.append(f"{name}: in the checkout, not in the wheel{hint}")
    for name in sorted(shipped - expected):
        found.append(f"{name}: in the wheel, not in the checkout (a stale build/ folder?)")
    if f"{PACKAGE}/py.typed" not in shipped:
        found.append(f"{PACKAGE}/py.typed is missing: type checkers would ignore the package's annotations")
    if metadata:
        fields = dict(line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines() if ": " in line)
        if fields.get("Name") != DISTRIBUTION:
            found.append(f"METADATA Name is {fields.get('Name')!r}, expected {DISTRIBUTION!r}")
        if fields.get("Version") != version:
            found.append(f"METADATA Version is {fields.get('Version')!r}, the checkout's __version__ is {version!r}")
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # entry point names are case-sensitive
    parser.read_string(entry_points)
    declared = parser.get("apache_airflow_provider", "provider_info", fallback=None)
    if declared != ENTRY_POINT:
        found.append(f"entry point apache_airflow_provider/provider_info is {declared!r}, expected {ENTRY_POINT!r}")
    return found


def listing(wheel: Path) -> str:
    """The wheel's files with their sizes, then a count per folder."""
    with zipfile.ZipFile(wheel) as zf:
        infos = [i for i in zf.infolist() if not i.filename.endswith("/")]
    lines = [f"{i.file_size:>9,}  {i.filename}" for i in infos]
    folders: dict[str, int] = {}
    for i in infos:
        folder = f"{PurePosixPath(i.filename).parent}/"
        folders[folder] = folders.get(folder, 0) + 1
    lines.append(f"{len(infos)} files, {sum(i.file_size for i in infos):,} bytes uncompressed, "
                 f"{wheel.stat().st_size:,} bytes as {wheel.name}")
    lines.extend(f"{count:>9}  {folder}" for folder, count in sorted(folders.items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    bad = False
    for arg in argv:
        wheel = Path(arg)
        print(listing(wheel))
        for problem in problems(wheel):
            bad = True
            print(f"WHEEL PROBLEM: {problem}", file=sys.stderr)
    if not bad:
        print("wheel contents OK: the package as in the checkout, py.typed, the provider entry point, nothing else")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
