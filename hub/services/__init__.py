"""Use cases of the hub. Each state change runs in one unit of work and appends its events."""
