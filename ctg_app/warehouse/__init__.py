"""Databricks SQL warehouse access shared by the chatbot's data source and usage-event delivery.

One connection factory (token or OAuth M2M), bounded retries, table-name validation and warehouse error classes.
"""
