"""Recording: the request path. ``@tracked`` turns each call into one ``Event`` written durably into the local spool.

Imports nothing from delivery or analytics and never touches the network; every failure ends in the fail-safe guard.
"""
