"""The CTG chatbot as a pipeline: question → answer (``answer/``) → SQL policy (``policy``) → data source (``data/``)
→ presentation (``present/``) → conversation (``conversation``), composed by ``assistant.Assistant``.

Nothing in this package imports Streamlit or contacts a network at import time; the pages, and the operations that
record each user action, live in ``ctg_app/ui/``.
"""
