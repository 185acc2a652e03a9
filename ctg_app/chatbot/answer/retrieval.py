"""Offline Vanna parts: an in-memory TF-IDF retrieval store and a retrieval "LLM" that never invents SQL.

``TfidfStore`` keeps DDL, documentation and question→SQL pairs in memory and ranks trained questions by cosine
similarity of word (1–2 gram) and character (3–5 gram) TF-IDF vectors, after a small synonym normalisation so that
paraphrases ("clients", "spend") meet the trained wording ("customers", "costs"). No model is downloaded.

``RetrievalLLM`` answers with the offline answering engine (:mod:`ctg_app.chatbot.answering`): SQL that honours every
constraint the question states (the trained SQL verbatim when the question means exactly a trained one), or a decline
with answerable alternatives and the nearest trained questions. Summaries are factual, computed from the result frame.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.pipeline import FeatureUnion
from vanna.legacy.base import VannaBase

from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.answering.engine import AnswerEngine

log = logging.getLogger(__name__)

# multi-word phrases first, then single words; applied to lower-cased text
PHRASES: dict[str, str] = {
    "number of": "how many",
    "count of": "how many",
    "cost-to-go": "cost to go",
    "remaining cost": "cost to go",
    "time sheet": "hours",
    "business line": "business unit",
    "per client": "per customer",
}
SYNONYMS: dict[str, str] = {
    "clients": "customers",
    "client": "customer",
    "accounts": "customers",
    "units": "departments",
    "unit": "department",
    "teams": "departments",
    "team": "department",
    "spend": "costs",
    "spent": "costs",
    "spending": "costs",
    "expenses": "costs",
    "expense": "cost",
    "expenditure": "costs",
    "ctg": "cost to go",
    "timesheets": "hours",
    "effort": "hours",
    "staff": "employees",
    "people": "employees",
    "biggest": "largest",
    "highest": "top",
    "revenue": "contract value",
    "jobs": "projects",
    "programmes": "projects",
    "overrun": "more than their budget",
    "overruns": "more than their budget",
    "eac": "estimate at completion",
    "pms": "project managers",
    "suppliers": "vendors",
    "supplier": "vendor",
}
_WORD = re.compile(r"[a-z0-9&]+")
# words that carry no meaning for matching (kept: how, many, top, per, by, which carry query intent)
STOP_WORDS = frozenset(
    "a an the of in on at to for from with and or is are was were be been do does did we our us you your i me my "
    "what whats there their please can could would show tell give list display get find me all this that these those "
    "it its".split()
)

# intent words: they say how to ask, not what about; a question made only of them is not about CTG data
GENERIC_WORDS = frozenset(
    "how many much top per by have has had most least total which who whom when where why each every average number "
    "than more less over under between largest smallest".split()
)


def normalise(text: str) -> str:
    """Lower-case, apply the phrase and synonym maps, keep word tokens and drop stop words."""
    text = (text or "").lower()
    for phrase, replacement in PHRASES.items():
        text = text.replace(phrase, replacement)
    words = " ".join(SYNONYMS.get(tok, tok) for tok in _WORD.findall(text)).split()
    return " ".join(w for w in words if w not in STOP_WORDS)


def _vectorizer() -> FeatureUnion:
    return FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"[a-z0-9&]+")),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)),
    ])


@dataclass
class _Index:
    vectorizer: FeatureUnion | None = None
    matrix: Any = None
    dirty: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class TfidfStore(VannaBase):
    """An in-memory, deterministic Vanna training store ranked by TF-IDF cosine similarity."""

    def __init__(self, config: dict | None = None) -> None:
        VannaBase.__init__(self, config=config)
        self.n_results = int((config or {}).get("n_results", 10))
        self._ddl: list[dict[str, str]] = []
        self._docs: list[dict[str, str]] = []
        self._qs: list[dict[str, str]] = []
        self._index = _Index()
        self._vocabulary: set[str] = set()

    # --- training ---
    def add_ddl(self, ddl: str, **kwargs: Any) -> str:
        """Store one DDL statement; returns its id."""
        item = {"id": f"{uuid.uuid4()}-ddl", "content": ddl}
        self._ddl.append(item)
        self._vocabulary.update(normalise(ddl.replace("_", " ")).split())
        return item["id"]

    def add_documentation(self, documentation: str, **kwargs: Any) -> str:
        """Store one documentation text; returns its id."""
        item = {"id": f"{uuid.uuid4()}-doc", "content": documentation}
        self._docs.append(item)
        return item["id"]

    def add_question_sql(self, question: str, sql: str, **kwargs: Any) -> str:
        """Store one question→SQL pair; returns its id."""
        item = {"id": f"{uuid.uuid4()}-sql", "question": question, "sql": sql}
        self._qs.append(item)
        self._vocabulary.update(normalise(question).split())
        self._index.dirty = True
        self.__dict__.pop("_engine", None)  # the answering engine re-reads the trained pairs
        return item["id"]

    def get_training_data(self, **kwargs: Any) -> pd.DataFrame:
        """All training items as Vanna's DataFrame (id, question, content, training_data_type)."""
        rows = [{"id": q["id"], "question": q["question"], "content": q["sql"], "training_data_type": "sql"}
                for q in self._qs]
        rows += [{"id": d["id"], "question": None, "content": d["content"], "training_data_type": "ddl"}
                 for d in self._ddl]
        rows += [{"id": d["id"], "question": None, "content": d["content"], "training_data_type": "documentation"}
                 for d in self._docs]
        return pd.DataFrame(rows, columns=["id", "question", "content", "training_data_type"])

    def remove_training_data(self, id: str, **kwargs: Any) -> bool:  # noqa: A002 - Vanna's signature
        """Remove one item by id; True when something was removed."""
        for items in (self._qs, self._ddl, self._docs):
            for i, item in enumerate(items):
                if item["id"] == id:
                    del items[i]
                    self._index.dirty = True
                    return True
        return False

    # --- retrieval ---
    def _fitted(self) -> _Index:
        index = self._index
        with index.lock:
            if index.dirty:
                if self._qs:
                    vec = _vectorizer()
                    index.matrix = vec.fit_transform([normalise(q["question"]) for q in self._qs])
                    index.vectorizer = vec
                else:
                    index.vectorizer, index.matrix = None, None
                index.dirty = False
        return index

    def generate_embedding(self, data: str, **kwargs: Any) -> list[float]:
        """The TF-IDF vector of ``data`` (empty before any question is trained)."""
        index = self._fitted()
        if index.vectorizer is None:
            return []
        return index.vectorizer.transform([normalise(data)]).toarray()[0].tolist()

    def is_on_topic(self, question: str) -> bool:
        """True when the question names at least one thing the training data knows (beyond intent words)."""
        return bool((set(normalise(question).split()) - GENERIC_WORDS) & self._vocabulary)

    def rank_questions(self, question: str, n: int | None = None) -> list[tuple[float, dict[str, str]]]:
        """Trained questions with their similarity to ``question``, most similar first.

        Scores are 0 for a question that shares no domain word with the training data (e.g. "How many moons does
        Jupiter have?" only shares intent words), so such questions are declined."""
        index = self._fitted()
        if index.vectorizer is None or not normalise(question):
            return []
        scores = cosine_similarity(index.vectorizer.transform([normalise(question)]), index.matrix)[0]
        if not self.is_on_topic(question):
            scores = scores * 0.0
        order = np.argsort(-scores, kind="stable")[: n or len(self._qs)]
        return [(float(scores[i]), self._qs[i]) for i in order]

    def get_similar_question_sql(self, question: str, **kwargs: Any) -> list[dict[str, str]]:
        """``[{"question", "sql"}]`` most similar first; for an empty question every trained pair (Vanna's
        ``generate_questions()`` relies on that)."""
        if not (question or "").strip():
            return [{"question": q["question"], "sql": q["sql"]} for q in self._qs]
        return [{"question": q["question"], "sql": q["sql"]}
                for score, q in self.rank_questions(question, self.n_results) if score > 0]

    def get_related_ddl(self, question: str, **kwargs: Any) -> list[str]:
        """All DDL (the CTG schema is small enough to send whole)."""
        return [d["content"] for d in self._ddl]

    def get_related_documentation(self, question: str, **kwargs: Any) -> list[str]:
        """All documentation (short)."""
        return [d["content"] for d in self._docs]


def _fmt(value: Any) -> str:
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer():
            return f"{int(value):,}"
        return f"{float(value):,.2f}"
    return str(value)


def factual_summary(df: pd.DataFrame) -> str:
    """A short, factual summary of a result frame: row count and key figures (never invented)."""
    if df is None or df.empty:
        return "The query returned no rows."
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if df.shape == (1, 1):
        return f"The answer is **{_fmt(df.iat[0, 0])}** ({df.columns[0]})."
    if len(df) == 1:
        parts = [f"{c} = {_fmt(df[c].iat[0])}" for c in df.columns[:6]]
        return "The query returned one row: " + ", ".join(parts) + "."
    text = [f"The query returned **{len(df):,} rows** and {df.shape[1]} columns."]
    labels = [c for c in df.columns if c not in numeric]
    label = labels[0] if labels else None
    for col in numeric[:3]:
        if col.lower().endswith(("_id", "year", "month", "quarter")):
            continue
        series = df[col].dropna()
        if series.empty:
            continue
        top, low = series.idxmax(), series.idxmin()
        line = f"{col}: total {_fmt(series.sum())}, average {_fmt(series.mean())}"
        if label is not None:
            line += f"; highest {df.at[top, label]} ({_fmt(series[top])}), lowest {df.at[low, label]} ({_fmt(series[low])})"
        text.append(line + ".")
    return "\n\n".join(text)


class RetrievalLLM(VannaBase):
    """A Vanna "LLM" that only ever returns trained SQL: the answer to the most similar trained question."""

    def __init__(self, config: dict | None = None) -> None:
        VannaBase.__init__(self, config=config)

    def system_message(self, message: str) -> dict[str, str]:
        """Chat-style message (kept for Vanna's prompt builders)."""
        return {"role": "system", "content": message}

    def user_message(self, message: str) -> dict[str, str]:
        """Chat-style message."""
        return {"role": "user", "content": message}

    def assistant_message(self, message: str) -> dict[str, str]:
        """Chat-style message."""
        return {"role": "assistant", "content": message}

    def answer_engine(self) -> AnswerEngine:
        """The offline answering engine over this object's data source and trained pairs (built on first use)."""
        engine = self.__dict__.get("_engine")
        if engine is None:
            run_sql = self.run_sql if getattr(self, "run_sql_is_set", False) else None  # type: ignore[attr-defined]
            engine = AnswerEngine(
                run_sql, dialect=getattr(self, "sql_dialect", "sqlite"),
                examples=[(q["question"], q["sql"]) for q in getattr(self, "_qs", [])],
                nearest=lambda text: [q["question"] for _, q in self.rank_questions(text, 3)])  # type: ignore[attr-defined]
            self.__dict__["_engine"] = engine
        return engine

    def retrieve(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL that honours every constraint of ``question`` (a follow-up of ``previous`` when given), or a decline."""
        return self.answer_engine().answer(question, previous)

    def submit_prompt(self, prompt: Any, **kwargs: Any) -> str:
        """Answer the last user message with trained SQL (or a decline text); never generates new SQL."""
        last = ""
        for message in prompt or []:
            if isinstance(message, dict) and message.get("role") == "user":
                last = message.get("content", "")
        answer = self.retrieve(last)
        return answer.sql if answer.sql else answer.message

    def generate_sql(self, question: str, allow_llm_to_see_data: bool = False, **kwargs: Any) -> str:
        """Vanna's entry point: the trained SQL, or the decline message."""
        answer = self.retrieve(question)
        return answer.sql if answer.sql else answer.message

    def generate_summary(self, question: str, df: pd.DataFrame, **kwargs: Any) -> str:
        """A factual summary from the frame (no language model)."""
        return factual_summary(df)

    def generate_followup_questions(self, question: str, sql: str, df: pd.DataFrame, n_questions: int = 5,
                                    **kwargs: Any) -> list[str]:
        """Related trained questions (excluding the one just answered)."""
        ranked = self.rank_questions(question, n_questions + 2)  # type: ignore[attr-defined]
        asked = normalise(question)
        return [q["question"] for score, q in ranked if normalise(q["question"]) != asked and q["sql"] != sql
                and score > 0][:n_questions]

    def generate_question(self, sql: str, **kwargs: Any) -> str:
        """The trained question whose SQL is ``sql`` (empty when none)."""
        for q in getattr(self, "_qs", []):
            if q["sql"].strip() == (sql or "").strip():
                return q["question"]
        return ""

    def generate_rewritten_question(self, last_question: str, new_question: str, **kwargs: Any) -> str:
        """No rewriting offline: the new question as asked."""
        return new_question
