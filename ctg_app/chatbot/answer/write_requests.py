"""Recognise requests to change data or permissions, whatever their wording, so every mode declines them.

The assistant only reads. A question is a write request when it contains SQL that writes (``DROP TABLE``,
``DELETE FROM``, ``INSERT INTO``, ``UPDATE … SET``, a stacked ``; DROP``), an injection pattern (``' OR 1=1``,
``UNION SELECT``, comments), an admin request (admin rights, permissions, passwords), or starts a clause with a verb
that changes data ("delete all projects", "please update the budget of P-2024-0001", "add a new vendor").

Reads that only *mention* such words stay reads: past participles ("projects with updated budgets", "deleted
vendors"), nouns ("the change in budget", "a set of projects") and read phrasings ("add up the costs", "create a
chart of costs per month").
"""

from __future__ import annotations

import re

MESSAGE = ("This assistant only reads data: it cannot change, add, delete or grant anything, and it did not run "
           "anything. Ask a question about the data instead, e.g. “What is the total budget per cost category?”")

_SQL_WRITE = re.compile(
    r"\b(?:drop|truncate|alter)\s+(?:table|database|schema|view|index|column|user|role)\b"
    r"|\bdelete\s+(?:\*\s+)?from\b|\binsert\s+(?:into|overwrite)\b|\bupdate\s+[\w.`\"]+\s+set\b"
    r"|\bmerge\s+into\b|\bcreate\s+(?:or\s+replace\s+)?(?:table|database|schema|view|index|user|function)\b"
    r"|\b(?:grant|revoke)\s+(?:all|select|insert|update|delete|usage|modify|admin|\w+\s+on)\b"
    r"|;\s*(?:drop|delete|insert|update|alter|truncate|create|grant|revoke|exec|merge|replace|attach|pragma)\b"
    r"|\b(?:exec|execute)\s*\(|\bxp_cmdshell\b|\battach\s+database\b|\bpragma\b|\bvacuum\b",
    re.IGNORECASE)
_INJECTION = re.compile(
    r"'\s*(?:or|and)\s+'?\w+'?\s*=\s*'?\w+|\bor\s+1\s*=\s*1\b|\bunion\s+(?:all\s+)?select\b|--|/\*|\*/|';|\bsleep\s*\("
    r"|\bbenchmark\s*\(|\bload_file\s*\(|\binto\s+outfile\b",
    re.IGNORECASE)
_ADMIN = re.compile(
    r"\b(?:admin|administrator|superuser|super\s+user|root\s+access|sudo|privileges?|permissions?|access\s+rights?"
    r"|write\s+access|read\s+write|passwords?|credentials?|api\s+keys?|tokens?|role\s+of\s+owner|owner\s+rights)\b",
    re.IGNORECASE)
WRITE_VERBS = (
    "delete|remove|drop|erase|wipe|purge|truncate|destroy|clear|insert|add|create|register|enter|update|change|modify|"
    "set|edit|rename|alter|overwrite|replace|reset|grant|revoke|assign|reassign|close|cancel|approve|reject|reopen|"
    "archive|book|post|record|log|move|transfer|increase|decrease|raise|lower|reduce|cut|write|save|"
    "store|restore|import|upload|load|commit|rollback|undo|mark|put|fix|correct|adjust|amend|deactivate|"
    "activate|disable|enable|lock|unlock|kill|shutdown|shut|terminate|fire|hire|pay|allocate|reallocate|"
    "delegate|backdate"
)
# a clause start: the beginning, after punctuation or a conjunction, or after a polite lead-in
_LEAD = (r"(?:^|[.;,!?:]\s*|\b(?:and|then|also|now)\s+)"
         r"(?:(?:please|pls|kindly|just|quickly|go\s+ahead\s+and|can\s+you|could\s+you|would\s+you|will\s+you|"
         r"i\s+want\s+(?:you\s+)?to|i\s+need\s+(?:you\s+)?to|i'd\s+like\s+(?:you\s+)?to|i\s+would\s+like\s+(?:you\s+)?to|"
         r"let's|lets|let\s+me|help\s+me|you\s+should|you\s+must|try\s+to|how\s+do\s+i|how\s+can\s+i|"
         r"how\s+to)\s+)*")
_VERB_AT_START = re.compile(_LEAD + rf"(?P<verb>{WRITE_VERBS})\b(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
# what may follow such a verb in a read: "add up the costs", "create a chart", "set of", "change in"
_READ_AFTER = re.compile(
    r"^\s*(?:up\b|together\b|of\b|in\b|over\b|per\b|by\b|between\b|from\s+\d{4}\b"
    r"|(?:a|an|the|me\s+a|me\s+the)?\s*(?:new\s+)?(?:chart|graph|plot|diagram|visuali[sz]ation|summary|report|overview|"
    r"list|breakdown|table\s+of|pivot|excel|download|export)\b)",
    re.IGNORECASE)


def is_write_request(question: str) -> bool:
    """True when ``question`` asks to change data or permissions (or carries SQL that would)."""
    text = (question or "").strip()
    if not text:
        return False
    if _SQL_WRITE.search(text) or _INJECTION.search(text) or _ADMIN.search(text):
        return True
    for match in _VERB_AT_START.finditer(text):
        rest = match.group("rest")
        if _READ_AFTER.match(rest):
            continue
        return True
    return False
