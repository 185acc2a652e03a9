"""Answering a question with SQL: the offline retrieval model and engine, the language-model providers, and the
write-request guard every mode applies first."""
