"""Alembic environment of the executor schema."""

from autom.core.db import run_alembic_env
from autom.executor.db import metadata

run_alembic_env(metadata)
