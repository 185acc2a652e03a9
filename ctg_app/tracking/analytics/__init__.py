"""Analytics: usage statistics and the spec's reports, read from the warehouse plus the not-yet-delivered spool rows.

``get_usage_stats()`` and the named reports; ``ctg-app usage-report`` is the command line over them.
"""
