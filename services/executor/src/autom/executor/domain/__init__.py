"""Pure execution logic: retry policies, inputs dispatch, step records."""
