"""Pure scheduling logic of the scheduler: trigger configs and what is due."""
