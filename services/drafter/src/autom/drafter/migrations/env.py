"""Alembic environment of the drafter schema."""

from autom.core.db import run_alembic_env
from autom.drafter.db import metadata

run_alembic_env(metadata)
