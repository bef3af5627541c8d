"""Airflow provider for exporting conversations from conversational-AI and support vendors."""

from __future__ import annotations

#: The one place the version is set: the package metadata, provider info and User-Agent all read it.
__version__ = "0.1.0"
__all__ = ["__version__"]
