"""Events: CloudEvents validation, the per-resource event log, publishing, reading and dispatch."""
