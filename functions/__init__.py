"""Thin Azure Functions triggers: decode the input, call ``shared``, nothing else."""
