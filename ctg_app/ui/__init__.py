"""The Streamlit user interface: the chat and analytics pages and their widgets (with ``ctg_app/app.py``, the only
code that imports Streamlit). Page scripts are registered by ``ctg_app/app.py``; everything they do on user intent
goes through :class:`ctg_app.chatbot.assistant.Assistant`-level operations in :mod:`ctg_app.chatbot`."""
