"""Notifications: email and SMS orders, dispatch, and delivery status tracked to a final state.

The domain (this package) imports no Azure SDK; adapters live in ``shared/adapters`` and are
chosen by the composition root (``shared.composition.notifications``).
"""
