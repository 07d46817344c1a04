"""autom.executor."""
