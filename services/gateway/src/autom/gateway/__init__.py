"""autom.gateway."""
