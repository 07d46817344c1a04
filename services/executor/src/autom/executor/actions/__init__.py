"""Built-in action handlers, paired with the catalog's action types."""
