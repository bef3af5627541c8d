"""Every vendor API the contract suite runs over: the built-in ones (``vendors.py``) and, found by file name, the
``VENDORS`` of each ``tests/<folder>/contract_fixture.py``, so a vendor outside the package joins the suite by
adding that one file, without an edit here or in the tests.

A separate module rather than the end of ``vendors.py``: a fixture module imports ``Vendor`` from there, and
``vendors.py`` importing the fixtures back would be an import cycle.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from tests.contract import vendors
from tests.contract.vendors import Vendor

TESTS = Path(__file__).resolve().parents[1]


def contract_fixtures() -> tuple[Vendor, ...]:
    """The ``VENDORS`` of every ``tests/*/contract_fixture.py``, in folder order."""
    found: list[Vendor] = []
    for path in sorted(TESTS.glob("*/contract_fixture.py")):
        found.extend(import_module(f"tests.{path.parent.name}.contract_fixture").VENDORS)
    return tuple(found)


EXTRA = contract_fixtures()
VENDORS = (*vendors.VENDORS, *EXTRA)
APIS = (*vendors.APIS, *EXTRA)
#: Every header any vendor carries its key in: each vendor must send exactly its own, and none of the others'.
AUTH_HEADERS = tuple(dict.fromkeys([*vendors.AUTH_HEADERS, *(name for v in EXTRA for name in v.auth)]))

_ids = [v.id for v in APIS]
assert len(_ids) == len(set(_ids)), f"two contract fixtures share an id: {sorted(_ids)}"
