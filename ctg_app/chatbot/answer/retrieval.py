"""The offline training store: DDL, documentation and question→SQL pairs in memory, ranked by TF-IDF similarity.

``TfidfStore`` ranks trained questions by cosine similarity of word (1–2 gram) and character (3–5 gram) TF-IDF
vectors, after a small synonym normalisation so that paraphrases ("clients", "spend") meet the trained wording
("customers", "costs"). No model is downloaded. It answers nothing by itself: the offline answerer
(:mod:`ctg_app.chatbot.answer.offline`) uses it for the nearest and related questions, and the language-model adapter
(:mod:`ctg_app.chatbot.answer.vanna_app`) as Vanna's training store.
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
from ctg_app.chatbot.data.training import load_training

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


class TfidfStore:
    """An in-memory, deterministic training store ranked by TF-IDF cosine similarity (Vanna's store interface)."""

    def __init__(self, config: dict | None = None) -> None:
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


    def pairs(self) -> list[tuple[str, str]]:
        """The trained (question, SQL) pairs, in training order."""
        return [(q["question"], q["sql"]) for q in self._qs]

    def questions(self) -> list[str]:
        """The trained questions, in training order."""
        return [q["question"] for q in self._qs if q["question"]]

    def related_questions(self, question: str, sql: str, n: int) -> list[str]:
        """Up to ``n`` trained questions related to ``question`` (neither it nor one with the same ``sql``)."""
        asked = normalise(question)
        return [q["question"] for score, q in self.rank_questions(question, n + 2)
                if normalise(q["question"]) != asked and q["sql"] != sql and score > 0][:n]


def train(store: Any, dialect: str) -> None:
    """Load the training file (transpiled to ``dialect``) into ``store`` (any object with the store interface)."""
    data = load_training(dialect=dialect)
    for ddl in data.ddl:
        store.add_ddl(ddl)
    for doc in data.documentation:
        store.add_documentation(doc)
    for example in data.examples:
        store.add_question_sql(question=example.question, sql=example.sql)
