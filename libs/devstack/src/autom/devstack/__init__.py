"""Embedded PostgreSQL and NATS, and the `make run` supervisor, for development and tests."""
