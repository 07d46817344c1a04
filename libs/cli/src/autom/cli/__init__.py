"""autom.cli: the `autom` command."""
