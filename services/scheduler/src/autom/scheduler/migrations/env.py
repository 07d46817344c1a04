"""Alembic environment of the scheduler schema."""

from autom.core.db import run_alembic_env
from autom.scheduler.db import metadata

run_alembic_env(metadata)
