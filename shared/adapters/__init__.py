"""Adapters: one module per external system. Only this package imports Azure SDKs."""
