"""autom.core."""
