"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

Connection forms are declared here (``conn-fields`` / ``ui-field-behaviour``): Airflow 3.3's UI builds the
form from this dict without importing the hooks. The forms themselves come from the catalog, the one list of
vendors that the hooks read too.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_conversations import __version__
from airflow_provider_conversations.catalog import VENDORS

_PACKAGE = "airflow_provider_conversations"


def get_provider_info() -> dict[str, Any]:
    def modules(*names: str) -> list[dict[str, Any]]:
        return [{"integration-name": "Conversations", "python-modules": list(names)}]

    return {
        "package-name": "airflow-provider-conversations",
        "name": "Conversations",
        "versions": [__version__],
        "description": "Export conversations (calls, chats, support threads) from ParrotMob, Anyreach, PolyAI, "
        "ElevenLabs and Replyful, exactly once per data interval, to XCom or object storage.",
        "integrations": [
            {"integration-name": "Conversations", "tags": ["service"]},
        ],
        "hooks": modules(f"{_PACKAGE}.hooks.base", *(v.hook_class_path.rpartition(".")[0] for v in VENDORS)),
        "operators": modules(f"{_PACKAGE}.operators.conversations"),
        "sensors": modules(f"{_PACKAGE}.sensors.conversations"),
        "triggers": modules(f"{_PACKAGE}.triggers.conversations"),
        "connection-types": [v.connection_type() for v in VENDORS],
    }
