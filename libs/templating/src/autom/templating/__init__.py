"""autom.templating."""
