"""autom.drafter: from one sentence to an automation the user approves."""
