"""Delivery: ship spooled events to the central table exactly once (leases, flusher, background thread, sinks).

The ``flush-spool`` command (``cli.py``) and the app's background flusher both run the same :class:`Flusher`.
"""
