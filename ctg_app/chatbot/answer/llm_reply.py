"""How a language model answers a question: the prompt, the reply format, and its errors in plain words.

The model is asked for one JSON object, ``{"sql": "...", "interpretation": "..."}`` (or ``{"sql": null, "decline":
"..."}``). :func:`parse_reply` reads it (tolerating code fences and a bare SQL block); anything without a query is an
:class:`~ctg_app.errors.LlmError` and nothing runs. :func:`retry_message` is the one follow-up the
model gets when its SQL failed the policy or the database (self-correction). :func:`llm_failure` turns a client
exception (timeout, HTTP 429, connection refused) into an ``LlmError`` whose message names the setting to change and
holds no secret.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ctg_app.settings import Settings, get_settings
from ctg_app.errors import LlmError
from ctg_app.redact import Redactor

MAX_REPLY_CHARS = 20_000

REPLY_FORMAT = (
    "Reply with ONE JSON object and nothing else:\n"
    '{{"sql": "<one read-only {dialect} SELECT query>", '
    '"interpretation": "<one line: what the query answers, naming every filter, grouping and value used, every value '
    'left out, every default assumed (e.g. a top 10) and, for a relative date, the period and the date it counts '
    'from>"}}\n'
    "{anchor}\n"
    "Use only the tables and columns of the schema above. If the question cannot be answered from them, or asks to "
    'change data, reply {{"sql": null, "decline": "<one line: why>"}}.'
)


@dataclass(frozen=True)
class LlmReply:
    """What the model answered: SQL and its one-line restatement, or a decline with the reason."""

    sql: str | None
    interpretation: str = ""
    decline: str = ""


def anchor_rule(settings: Settings, today: dt.date | None = None) -> str:
    """The prompt line saying what relative dates ("last year", "YTD") count from (setting ``CTG_DATE_ANCHOR``)."""
    anchor = settings.date_anchor
    if anchor == "latest-data":
        return ('Relative dates ("last year", "this quarter", "YTD") count from the latest posting_date in '
                "actual_costs (the latest data), not from today.")
    day = (today or dt.date.today()).isoformat() if anchor == "today" else anchor
    return f'Relative dates ("last year", "this quarter", "YTD") count from {day}.'


def build_messages(vn: object, question: str, dialect: str, previous: object | None = None,
                   settings: Settings | None = None) -> list[dict]:
    """The chat messages for ``question``: schema, documentation, similar trained examples, the previous turn."""
    ddl = "\n\n".join(vn.get_related_ddl(question))  # type: ignore[attr-defined]
    docs = "\n".join(f"- {d}" for d in vn.get_related_documentation(question))  # type: ignore[attr-defined]
    system = (
        f"You write {dialect} queries over a project-controlling database. You only read data.\n\n"
        f"=== Schema\n{ddl}\n\n=== Notes\n{docs}\n\n"
        + REPLY_FORMAT.format(dialect=dialect, anchor=anchor_rule(settings or get_settings()))
    )
    messages = [vn.system_message(system)]  # type: ignore[attr-defined]
    for example in vn.get_similar_question_sql(question)[:5]:  # type: ignore[attr-defined]
        messages.append(vn.user_message(example["question"]))  # type: ignore[attr-defined]
        messages.append(vn.assistant_message(json.dumps(  # type: ignore[attr-defined]
            {"sql": example["sql"], "interpretation": example["question"]})))
    prev_sql = getattr(previous, "sql", None)
    if previous is not None and prev_sql:
        messages.append(vn.user_message(getattr(previous, "question", "")))  # type: ignore[attr-defined]
        messages.append(vn.assistant_message(json.dumps(  # type: ignore[attr-defined]
            {"sql": prev_sql, "interpretation": getattr(previous, "interpretation", "")})))
    messages.append(vn.user_message(question))  # type: ignore[attr-defined]
    return messages


def retry_message(sql: str | None, error: str) -> str:
    """The single follow-up after a failed query: the error text, and the same reply format."""
    return (f"That query failed: {error}\nThe query was: {sql}\n"
            "Correct it. Reply again with ONE JSON object in the same format.")


_FENCE = re.compile(r"```(?:json|sql)?\s*(.*?)```", re.S | re.I)
_SQL_START = re.compile(r"^\s*(select|with)\b", re.I)


def parse_reply(text: object) -> LlmReply:
    """The model's reply as :class:`LlmReply`; raises LlmError when it holds neither a query nor a decline."""
    raw = str(text or "").strip()[:MAX_REPLY_CHARS]
    candidates = [raw, *(m.strip() for m in _FENCE.findall(raw))]
    brace = raw.find("{"), raw.rfind("}")
    if 0 <= brace[0] < brace[1]:
        candidates.append(raw[brace[0]:brace[1] + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and ("sql" in data or "decline" in data):
            sql = data.get("sql")
            interpretation = _one_line(data.get("interpretation"))
            if isinstance(sql, str) and sql.strip():
                return LlmReply(sql.strip(), interpretation)
            if data.get("decline"):
                return LlmReply(None, decline=_one_line(data.get("decline")))
    for candidate in candidates:  # a bare query, as some models send despite the instructions
        if _SQL_START.match(candidate):
            return LlmReply(candidate.strip().rstrip(";").strip())
    raise LlmError("the language model's reply held no SQL query (nothing was run); try rephrasing the question")


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())[:300]


def llm_failure(exc: BaseException, settings: Settings) -> LlmError:
    """A clear :class:`LlmError` for a failed model request (the original stays as ``__cause__``)."""
    names = _class_names(exc)
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    tries = f"{settings.llm_max_retries + 1} attempt{'s' if settings.llm_max_retries else ''}"
    if any("Timeout" in n for n in names):
        message = (f"the language model did not answer within LLM_TIMEOUT_S={settings.llm_timeout_s:g} s "
                   f"({tries}); try again, or raise LLM_TIMEOUT_S")
    elif status == 429 or "RateLimitError" in names:
        message = f"the language model is rate-limited (HTTP 429) after {tries}; try again in a minute"
    elif any(n in names for n in ("APIConnectionError", "ConnectError", "ConnectionError", "ConnectionRefusedError")):
        message = f"the language model could not be reached ({tries}); check the provider's endpoint setting"
    elif status in (401, 403) or "AuthenticationError" in names:
        message = f"the language model refused the credentials (HTTP {status or 401}): check the API key setting"
    else:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"the language model request failed: {type(exc).__name__}: {first}"
    return LlmError(Redactor(settings.secret_values(), max_length=300)(message))


def _class_names(exc: BaseException) -> Sequence[str]:
    return [cls.__name__ for cls in type(exc).__mro__]
