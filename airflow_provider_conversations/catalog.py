"""The one list of vendors, with what each declares to Airflow's UI: its connection form and regional hosts.

Data only, no imports of the hooks: ``get_provider_info()`` reads it when Airflow lists connection types (the
api-server builds each form from it without importing a hook), the hook registry and the simulator registry
read their class paths from it, and each hook reads its own entry (extra fields, defaults, enums, regional base
URLs), so a form and the hook behind it can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_PACKAGE = "airflow_provider_conversations"


@dataclass(frozen=True)
class FormField:
    """One field of a connection's Extra, shown in the connection form."""

    name: str
    label: str
    description: str
    default: str | None = None
    #: The allowed values (an enum in the form; anything else in a connection is refused before a request).
    choices: tuple[str, ...] = ()
    #: The value becomes a segment of the endpoint's URL path (``.`` and ``..`` are refused).
    path_segment: bool = False

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["string", "null"]}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        return schema


#: Every vendor's form has it; the hooks read it from the extra of every connection.
VERIFY_SSL = "verify_ssl"
_VERIFY_SSL_FORM = {
    "label": "Verify TLS certificates",
    "description": "Leave on. Turning it off is logged as a warning on every task that uses this connection.",
    "schema": {"type": ["boolean", "null"], "default": True},
}


#: Every vendor's form has these too: the API key's request budget and where it is shared (transport/throttle.py).
RATE_LIMIT = "rate_limit"
RATE_LIMIT_STORAGE = "rate_limit_storage"


def _rate_limit_form(default: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default:
        schema["default"] = default
    return {
        "label": "Rate limit (requests/seconds)",
        "description": "The API key's request budget, e.g. 100/60; 'none' for no client-side budget. "
        + (f"Default: {default}, the vendor's documented limit." if default
           else "Default: none (the vendor documents no limit); its rate-limit headers and 429s still pace."),
        "schema": schema,
    }


_RATE_LIMIT_STORAGE_FORM = {
    "label": "Rate limit storage",
    "description": "Where the budget lives, e.g. redis://127.0.0.1:6379/0: every task of every worker using this "
    "key then shares it, and a 429 pauses them all. Empty: each task paces alone (in process). Needs the "
    "[redis] extra.",
    "schema": {"type": ["string", "null"]},
}


@dataclass(frozen=True)
class Vendor:
    """A vendor as the provider declares it: connection type, classes, connection form, regional hosts."""

    conn_type: str
    #: Shown in the connection type list, e.g. "PolyAI (conversations)".
    title: str
    fields: tuple[FormField, ...] = ()
    host_label: str = "Base URL (optional)"
    host_placeholder: str = ""
    key_label: str = "API key"
    #: Region -> base URL, for vendors whose extra ``region`` picks the host (when Host is empty).
    regions: Mapping[str, str] = field(default_factory=dict)
    #: The documented request budget per API key (``"<requests>/<seconds>"``), or None when there is none.
    rate_limit: str | None = None
    #: ``module.Class`` of the hook and of the simulator, relative to the package.
    hook: str = ""
    simulator: str = ""

    def field(self, name: str) -> FormField:
        return next(f for f in self.fields if f.name == name)

    @property
    def extra_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def hook_class_path(self) -> str:
        return f"{_PACKAGE}.hooks.{self.hook}"

    @property
    def simulator_class_path(self) -> str:
        return f"{_PACKAGE}.testing.{self.simulator}"

    def connection_type(self) -> dict[str, Any]:
        """This vendor's entry of ``get_provider_info()["connection-types"]``."""
        return {
            "connection-type": self.conn_type,
            "hook-class-name": self.hook_class_path,
            "hook-name": self.title,
            "conn-fields": {
                **{f.name: {"label": f.label, "description": f.description, "schema": f.schema()}
                   for f in self.fields},
                VERIFY_SSL: _VERIFY_SSL_FORM,
                RATE_LIMIT: _rate_limit_form(self.rate_limit),
                RATE_LIMIT_STORAGE: _RATE_LIMIT_STORAGE_FORM,
            },
            "ui-field-behaviour": {
                "hidden-fields": ["login", "schema", "port"],
                "relabeling": {"host": self.host_label, "password": self.key_label},
                "placeholders": {"host": self.host_placeholder},
            },
        }


POLYAI_REGIONS = {
    "us-1": "https://api.us-1.platform.polyai.app",
    "uk-1": "https://api.uk-1.platform.polyai.app",
    "euw-1": "https://api.euw-1.platform.polyai.app",
}
ELEVENLABS_REGIONS = {
    "global": "https://api.elevenlabs.io",
    "us": "https://api.us.elevenlabs.io",
    "eu-residency": "https://api.eu.residency.elevenlabs.io",
    "in-residency": "https://api.in.residency.elevenlabs.io",
    "sg-residency": "https://api.sg.residency.elevenlabs.io",
}

VENDORS: tuple[Vendor, ...] = (
    Vendor(
        "parrotmob", "ParrotMob (conversations)",
        fields=(FormField("account_id", "Account ID",
                          "Account that owns the conversations; 'me' means the token's own account.", default="me",
                          path_segment=True),),
        host_label="Base URL (required)", host_placeholder="https://macaw.parrotmob.example", key_label="API token",
        hook="parrotmob.ParrotMobHook", simulator="parrotmob.ParrotMobSimulator",
    ),
    Vendor(
        "anyreach", "Anyreach (conversations)",
        fields=(FormField("org_id", "Organisation ID",
                          "Required for personal access tokens (pat_...); sent as X-Anyreach-Org."),),
        host_placeholder="https://api.anyreach.ai",
        key_label="API key (ak_...) or personal access token (pat_...)",
        hook="anyreach.AnyreachHook", simulator="anyreach.AnyreachSimulator",
    ),
    Vendor(
        "polyai", "PolyAI (conversations)",
        fields=(
            FormField("region", "Region", "Regional API: us-1, uk-1 or euw-1. Ignored when Base URL is set.",
                      default="us-1", choices=tuple(POLYAI_REGIONS)),
            FormField("account_id", "Account ID", "PolyAI account id (path parameter).", path_segment=True),
            FormField("project_id", "Project ID", "PolyAI project id (path parameter).", path_segment=True),
            FormField("client_env", "Client environment", "sandbox, pre-release or live.", default="live",
                      choices=("sandbox", "pre-release", "live")),
            FormField("api_version", "API version", "v3 (cursor paging, default) or v1 (offset paging).",
                      default="v3", choices=("v3", "v1")),
        ),
        host_label="Base URL (optional, overrides Region)", host_placeholder=POLYAI_REGIONS["us-1"],
        regions=POLYAI_REGIONS, hook="polyai.PolyAIHook", simulator="polyai.PolyAISimulator",
    ),
    Vendor(
        "elevenlabs", "ElevenLabs Agents (conversations)",
        fields=(FormField("region", "Region / data residency",
                          "global (api.elevenlabs.io), us, eu-residency, in-residency or sg-residency. Ignored "
                          "when Base URL is set.", default="global", choices=tuple(ELEVENLABS_REGIONS)),),
        host_label="Base URL (optional, overrides Region)", host_placeholder=ELEVENLABS_REGIONS["global"],
        regions=ELEVENLABS_REGIONS, hook="elevenlabs.ElevenLabsHook", simulator="elevenlabs.ElevenLabsSimulator",
    ),
    Vendor(
        "replyful", "Replyful (conversations)",
        host_placeholder="https://api.replyful.com", key_label="API key (rfl_live_... or rfl_test_...)",
        rate_limit="100/60",
        hook="replyful.ReplyfulHook", simulator="replyful.ReplyfulSimulator",
    ),
)
BY_CONN_TYPE: Mapping[str, Vendor] = {v.conn_type: v for v in VENDORS}
CONN_TYPES: tuple[str, ...] = tuple(BY_CONN_TYPE)

__all__ = ["BY_CONN_TYPE", "CONN_TYPES", "RATE_LIMIT", "RATE_LIMIT_STORAGE", "VENDORS", "VERIFY_SSL", "FormField",
           "Vendor"]
