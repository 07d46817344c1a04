"""make run skips a service's migrate process only when its schema is exactly at head."""

from __future__ import annotations

from autom.devstack.migrations import schema_at_head, script_heads
from autom.devstack.postgres import psql


def test_schema_at_head_follows_the_database(database_url: str) -> None:
    (head,) = script_heads("autom.executor")
    # The test database starts from a template migrated to head.
    assert schema_at_head(database_url, "executor", "autom.executor")
    # A schema behind its scripts (an older checkout's database) must migrate again.
    psql(database_url, "UPDATE executor.alembic_version SET version_num = 'older';\n")
    assert not schema_at_head(database_url, "executor", "autom.executor")
    psql(database_url, f"UPDATE executor.alembic_version SET version_num = '{head}';\n")
    assert schema_at_head(database_url, "executor", "autom.executor")
    # Another service's scripts never vouch for this schema; a missing schema is not at head.
    assert not schema_at_head(database_url, "executor", "autom.scheduler")
    psql(database_url, "DROP SCHEMA executor CASCADE;\n")
    assert not schema_at_head(database_url, "executor", "autom.executor")
