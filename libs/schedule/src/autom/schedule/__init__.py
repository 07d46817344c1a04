"""autom.schedule."""
