"""The CTG chatbot: sample data, training data, data sources, the Vanna assembly and the offline retrieval model.

Nothing in this package contacts a network at import time; the Streamlit UI lives in ``ctg_app/chatbot/chat_page.py`` (registered by ``ctg_app/app_pages/chat.py``).
"""
