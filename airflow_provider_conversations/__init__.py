"""Airflow provider for exporting conversations from conversational-AI and support vendors."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
