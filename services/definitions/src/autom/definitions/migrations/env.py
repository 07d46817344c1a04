"""Alembic environment of the definitions schema."""

from autom.core.db import run_alembic_env
from autom.definitions.db import metadata

run_alembic_env(metadata)
