"""Local vendor simulators: real HTTP servers on 127.0.0.1 that speak each vendor's wire format.

Shipped with the package so users can test their own DAGs offline::

    from airflow_provider_conversations.testing import simulator

    with simulator("polyai", conversations=5000) as sim:
        os.environ["AIRFLOW_CONN_POLYAI_DEFAULT"] = json.dumps(sim.connection())
        ...
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from airflow_provider_conversations.catalog import VENDORS
from airflow_provider_conversations.testing.dataset import Conversation, generate
from airflow_provider_conversations.testing.server import Faults, SimRequest, SimResponse, VendorSimulator

#: vendor -> simulator class path (from the vendor catalog, the list the hooks and provider info read too)
SIMULATORS: dict[str, str] = {v.conn_type: v.simulator_class_path for v in VENDORS}


def simulator_class(vendor: str) -> type[VendorSimulator]:
    path = SIMULATORS.get(vendor)
    if path is None:
        raise ValueError(f"unknown vendor {vendor!r}; allowed: {', '.join(SIMULATORS)}")
    module, _, name = path.rpartition(".")
    cls: type[VendorSimulator] = getattr(import_module(module), name)
    return cls


def simulator(vendor: str, **kwargs: Any) -> VendorSimulator:
    """A (not yet started) simulator for ``vendor``; use it as a context manager to run it."""
    return simulator_class(vendor)(**kwargs)


__all__ = [
    "SIMULATORS",
    "Conversation",
    "Faults",
    "SimRequest",
    "SimResponse",
    "VendorSimulator",
    "generate",
    "simulator",
    "simulator_class",
]
