"""Answering a question with SQL: the ``Answerer`` protocol, the offline answerer (the answering engine), the
language-model answerer (the one Vanna adapter), the providers, and the write-request guard every mode applies first."""
