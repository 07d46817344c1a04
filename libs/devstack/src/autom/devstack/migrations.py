"""Whether a service's schema is already at its migrations' head, so start-up can skip it."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from autom.devstack.postgres import PostgresError, psql

logger = logging.getLogger(__name__)


def script_heads(package: str) -> frozenset[str]:
    """Head revisions of `package`'s Alembic scripts (its `migrations` directory)."""
    from alembic.script import ScriptDirectory

    # find_spec locates the package without running the service's own code.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    location = Path(next(iter(spec.submodule_search_locations))) / "migrations"
    return frozenset(ScriptDirectory(str(location)).get_heads())


def schema_at_head(url: str, schema: str, package: str) -> bool:
    """True only when the database records exactly the scripts' heads; any doubt migrates."""
    try:
        heads = script_heads(package)
        out = psql(url, f'SELECT version_num FROM "{schema}".alembic_version;\n')
    except (PostgresError, ImportError, OSError) as exc:
        logger.debug("cannot tell whether %s is at head (%s); migrating", schema, exc)
        return False
    return bool(heads) and frozenset(out.split()) == heads
