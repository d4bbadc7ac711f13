"""What every flow shares: the settings a flow run works on.

Deployed flows take plain JSON parameters (Prefect stores and validates them); the working set is chosen by
``home`` (a folder: raw drop, stores, tables, runs all derive from it) or, when it is not given, by the
environment of the worker (``PETCAP_HOME`` and the other ``PETCAP_`` variables, e.g. set as job variables).
"""

from __future__ import annotations

from data_contracts.settings import Settings, get_settings


def flow_settings(home: str | None = None, raw_dir: str | None = None) -> Settings:
    """Settings from the environment, with the flow's ``home`` / ``raw_dir`` parameters taking precedence."""
    overrides = {k: v for k, v in (("home", home), ("raw_dir", raw_dir)) if v}
    return Settings(**overrides) if overrides else get_settings()
