"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

Connection forms are declared here (``conn-fields`` / ``ui-field-behaviour``): Airflow 3.3's UI builds the
form from this dict without importing the hooks.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_conversations import __version__

_HOOKS = "airflow_provider_conversations.hooks"

_VERIFY_SSL = {
    "verify_ssl": {
        "label": "Verify TLS certificates",
        "description": "Leave on. Turning it off is logged as a warning on every task that uses this connection.",
        "schema": {"type": ["boolean", "null"], "default": True},
    }
}


def _form(*, hidden: list[str], host_label: str, host_placeholder: str, key_label: str = "API key",
          placeholders: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "hidden-fields": hidden,
        "relabeling": {"host": host_label, "password": key_label},
        "placeholders": {"host": host_placeholder, **(placeholders or {})},
    }


def _connection_types() -> list[dict[str, Any]]:
    return [
        {
            "connection-type": "parrotmob",
            "hook-class-name": f"{_HOOKS}.parrotmob.ParrotMobHook",
            "hook-name": "ParrotMob (conversations)",
            "conn-fields": {
                "account_id": {
                    "label": "Account ID",
                    "description": "Account that owns the conversations; 'me' means the token's own account.",
                    "schema": {"type": ["string", "null"], "default": "me"},
                },
                **_VERIFY_SSL,
            },
            "ui-field-behaviour": _form(
                hidden=["login", "schema", "port"],
                host_label="Base URL (required)",
                host_placeholder="https://macaw.parrotmob.example",
                key_label="API token",
            ),
        },
        {
            "connection-type": "anyreach",
            "hook-class-name": f"{_HOOKS}.anyreach.AnyreachHook",
            "hook-name": "Anyreach (conversations)",
            "conn-fields": {
                "org_id": {
                    "label": "Organisation ID",
                    "description": "Required for personal access tokens (pat_...); sent as X-Anyreach-Org.",
                    "schema": {"type": ["string", "null"]},
                },
                **_VERIFY_SSL,
            },
            "ui-field-behaviour": _form(
                hidden=["login", "schema", "port"],
                host_label="Base URL (optional)",
                host_placeholder="https://api.anyreach.ai",
                key_label="API key (ak_...) or personal access token (pat_...)",
            ),
        },
        {
            "connection-type": "polyai",
            "hook-class-name": f"{_HOOKS}.polyai.PolyAIHook",
            "hook-name": "PolyAI (conversations)",
            "conn-fields": {
                "region": {
                    "label": "Region",
                    "description": "Regional API: us-1, uk-1 or euw-1. Ignored when Base URL is set.",
                    "schema": {"type": ["string", "null"], "enum": ["us-1", "uk-1", "euw-1"],
                               "default": "us-1"},
                },
                "account_id": {
                    "label": "Account ID",
                    "description": "PolyAI account id (path parameter).",
                    "schema": {"type": ["string", "null"]},
                },
                "project_id": {
                    "label": "Project ID",
                    "description": "PolyAI project id (path parameter).",
                    "schema": {"type": ["string", "null"]},
                },
                "client_env": {
                    "label": "Client environment",
                    "description": "sandbox, pre-release or live.",
                    "schema": {"type": ["string", "null"], "enum": ["sandbox", "pre-release", "live"],
                               "default": "live"},
                },
                "api_version": {
                    "label": "API version",
                    "description": "v3 (cursor paging, default) or v1 (offset paging).",
                    "schema": {"type": ["string", "null"], "enum": ["v3", "v1"], "default": "v3"},
                },
                **_VERIFY_SSL,
            },
            "ui-field-behaviour": _form(
                hidden=["login", "schema", "port"],
                host_label="Base URL (optional, overrides Region)",
                host_placeholder="https://api.us-1.platform.polyai.app",
            ),
        },
        {
            "connection-type": "elevenlabs",
            "hook-class-name": f"{_HOOKS}.elevenlabs.ElevenLabsHook",
            "hook-name": "ElevenLabs Agents (conversations)",
            "conn-fields": {
                "region": {
                    "label": "Region / data residency",
                    "description": "global (api.elevenlabs.io), us, eu-residency, in-residency or sg-residency. "
                    "Ignored when Base URL is set.",
                    "schema": {
                        "type": ["string", "null"],
                        "enum": ["global", "us", "eu-residency", "in-residency", "sg-residency"],
                        "default": "global",
                    },
                },
                **_VERIFY_SSL,
            },
            "ui-field-behaviour": _form(
                hidden=["login", "schema", "port"],
                host_label="Base URL (optional, overrides Region)",
                host_placeholder="https://api.elevenlabs.io",
            ),
        },
        {
            "connection-type": "replyful",
            "hook-class-name": f"{_HOOKS}.replyful.ReplyfulHook",
            "hook-name": "Replyful (conversations)",
            "conn-fields": {**_VERIFY_SSL},
            "ui-field-behaviour": _form(
                hidden=["login", "schema", "port"],
                host_label="Base URL (optional)",
                host_placeholder="https://api.replyful.com",
                key_label="API key (rfl_live_... or rfl_test_...)",
            ),
        },
    ]


def get_provider_info() -> dict[str, Any]:
    modules = ["parrotmob", "anyreach", "polyai", "elevenlabs", "replyful"]
    return {
        "package-name": "airflow-provider-conversations",
        "name": "Conversations",
        "versions": [__version__],
        "description": "Export conversations (calls, chats, support threads) from ParrotMob, Anyreach, PolyAI, "
        "ElevenLabs and Replyful, exactly once per data interval, to XCom or object storage.",
        "integrations": [
            {"integration-name": "Conversations", "tags": ["service"]},
        ],
        "hooks": [
            {
                "integration-name": "Conversations",
                "python-modules": [f"{_HOOKS}.base", *(f"{_HOOKS}.{m}" for m in modules)],
            }
        ],
        "operators": [
            {
                "integration-name": "Conversations",
                "python-modules": ["airflow_provider_conversations.operators.conversations"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Conversations",
                "python-modules": ["airflow_provider_conversations.sensors.conversations"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Conversations",
                "python-modules": ["airflow_provider_conversations.triggers.conversations"],
            }
        ],
        "connection-types": _connection_types(),
    }
