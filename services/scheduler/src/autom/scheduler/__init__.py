"""autom.scheduler."""
