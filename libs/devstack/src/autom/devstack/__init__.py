"""autom.devstack."""
