"""The logging the lower layers need, as a protocol: Airflow's task loggers and stdlib loggers both fit."""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    def info(self, event: Any, *args: Any) -> Any: ...

    def warning(self, event: Any, *args: Any) -> Any: ...


__all__ = ["Log"]
