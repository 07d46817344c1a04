"""autom.definitions."""
