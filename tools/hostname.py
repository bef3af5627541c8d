"""``[core] hostname_callable`` for ``make cluster``: each Celery worker reports its own name.

Both workers of the local cluster run on one machine, so the host's FQDN would make their task instances
indistinguishable; each worker gets ``CONVERSATIONS_NODE_NAME`` (``worker-1``, ``worker-2``) and every task it
runs records that as its hostname. Processes without the variable (scheduler, triggerer) report the FQDN.
Kept apart from tools/cluster.py so every Airflow process imports only this.
"""

from __future__ import annotations

import os
import socket


def node_name() -> str:
    return os.environ.get("CONVERSATIONS_NODE_NAME") or socket.getfqdn()
