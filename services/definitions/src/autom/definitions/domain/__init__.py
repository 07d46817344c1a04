"""Pure domain logic of automations: the envelope model and its validation."""
