"""Adapters: one module per store or external system, each implementing a port of a feature package.

Only this package and the composition root (``shared.composition``), which chooses among them, import
Azure SDKs or HTTP clients."""
