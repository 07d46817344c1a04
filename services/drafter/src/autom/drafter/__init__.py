"""autom.drafter."""
