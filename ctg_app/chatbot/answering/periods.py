"""Time windows and numeric comparisons in a question's text: years, quarters, halves, months, ranges, "since",
relative dates counted from an anchor ("last year", "this quarter", "YTD"), and "over 1 million" / "between 1m and 2m".

Each finder records what it found in the :class:`~ctg_app.chatbot.answering.understanding.Spec` and returns the text
without it, so the words left over are read by :mod:`understanding`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctg_app.chatbot.answering.understanding import Spec

MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), start=1)}
MONTHS.update({"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
               "oct": 10, "nov": 11, "dec": 12})
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "last": 4}


def _year(text: str) -> int:
    y = int(text)
    return y + 2000 if y < 100 else y



def _range(start: dt.date, end: dt.date, text: str, years: list[int] | None = None) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "text": text, "whole_years": years or []}


def _years_range(first: int, last: int, text: str) -> dict[str, Any]:
    return _range(dt.date(first, 1, 1), dt.date(last + 1, 1, 1), text, list(range(first, last + 1)))


def _month_range(year: int, month: int, months: int) -> tuple[dt.date, dt.date]:
    end_month = month + months
    return dt.date(year, month, 1), dt.date(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)


TIME_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:this|last|next|previous|current|past|coming|prior)\s+(?:fiscal\s+)?"
                r"(?:year|month|quarter|week|fy|half|\d+\s+(?:years|months|weeks|days))\b(?!\s+(?:of\s+)?20\d{2})|\bytd\b|\byear\s+to\s+date\b"
                r"|\b(?:today|yesterday|recently|lately)\b"), "relative"),
    (re.compile(r"\b(?:between|from)\s+(?:fy\s*)?(20\d{2})\s+(?:and|to|until|till|through|-)\s+(?:fy\s*)?(20\d{2})\b"),
     "years"),
    (re.compile(r"(?<!p-)\b(20\d{2})\s*(?:-|–|to|until|through)\s*(20\d{2})\b"), "years"),
    (re.compile(r"\b(?:in\s+the\s+|the\s+)?(first|second|1st|2nd)\s+half\s+(?:of\s+)?(?:the\s+)?(?:year\s+|fy\s*)?(20\d{2})\b"),
     "half"),
    (re.compile(r"\bh([12])\s*(?:of\s+)?(?:fy\s*)?(20\d{2})\b"), "half_h"),
    (re.compile(r"(?<!p-)\b(20\d{2})\s*h([12])\b"), "half_yh"),
    (re.compile(r"\b(?:in\s+)?(?:the\s+)?(first|second|third|fourth|1st|2nd|3rd|4th|last)\s+quarter\s+(?:of\s+)?"
                r"(?:fy\s*)?(20\d{2})\b"), "quarter"),
    (re.compile(r"\bq([1-4])\s*(?:of\s+|/\s*|-\s*)?(?:fy\s*)?'?(20\d{2}|\d{2})\b(?![.,]\d|\s*(?:k|m|%|mio|million))"),
     "quarter_q"),
    (re.compile(r"(?<!p-)\b(20\d{2})\s*[- ]?q([1-4])\b"), "quarter_yq"),
    (re.compile(rf"\b(?:between\s+|from\s+)?({_MONTH_RE})\.?\s+(?:(20\d{{2}})\s+)?(?:and|to|until|till|through|-)\s+"
                rf"({_MONTH_RE})\.?\s+(?:of\s+)?(20\d{{2}})\b"), "month_range"),
    (re.compile(rf"\b(?:since|from|starting\s+(?:in\s+)?|as\s+of)\s+({_MONTH_RE})\.?\s+(?:of\s+)?(20\d{{2}})\b"),
     "since_month"),
    (re.compile(rf"\b({_MONTH_RE})\.?\s+(?:of\s+)?(20\d{{2}})\b"), "month"),
    (re.compile(r"(?<!p-)\b(20\d{2})-(0[1-9]|1[0-2])\b(?!\d)"), "month_iso"),
    (re.compile(r"\b(?:since|from|starting\s+(?:in\s+)?|as\s+of)\s+(?:fy\s*)?(20\d{2})\b"), "since"),
    (re.compile(r"\b(?:after|later\s+than|beyond)\s+(?:fy\s*)?(20\d{2})\b"), "after"),
    (re.compile(r"\b(?:before|prior\s+to|earlier\s+than)\s+(?:fy\s*)?(20\d{2})\b"), "before"),
    (re.compile(r"\b(?:until|till|through|up\s+to|by|to|no\s+later\s+than)\s+(?:the\s+end\s+of\s+)?(?:fy\s*)?(20\d{2})\b"),
     "until"),
    (re.compile(r"\b(?:fy|fiscal\s+year|financial\s+year|fiscal)\s*'?(\d{2}|20\d{2})\b"), "fiscal"),
    (re.compile(r"(?<!p-)\b(20\d{2})\b(?!-\d)"), "year"),
]
DATA_FIRST_YEAR, DATA_LAST_YEAR = 2020, 2035
THRESHOLD = re.compile(
    r"\b(over|above|more\s+than|greater\s+than|exceeding|exceeds|exceed|exceeded|at\s+least|larger\s+than|bigger\s+than|"
    r"higher\s+than|under|below|less\s+than|fewer\s+than|lower\s+than|smaller\s+than|at\s+most)\s*(?:€|eur\s*)?\s*(\d[\d,]*(?:\.\d+)?)\s*"
    r"(k|m|mn|mio|million|millions|thousand|bn|billion)?\b(?:\s*(?:eur|euro|euros|€))?|([<>])\s*(\d[\d,]*(?:\.\d+)?)\s*"
    r"(k|m|million|thousand)?")
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "mio": 1e6, "million": 1e6, "millions": 1e6,
          "bn": 1e9, "billion": 1e9}


Anchor = tuple[dt.date, str]  # the date relative dates count from, and how to say it ("relative to …")


def _relative(phrase: str, anchor: Anchor | None) -> dict[str, Any] | None:
    """The window a relative date means, counted from ``anchor`` (None when it is not a form resolved here)."""
    if anchor is None:
        return None
    day, said = anchor
    words = phrase.lower().split()
    if words[0] in ("ytd",) or phrase.lower().startswith("year to date"):
        window = _range(dt.date(day.year, 1, 1), day + dt.timedelta(days=1),
                        f"from 1 January {day.year} to {day.isoformat()}")
    elif len(words) in (2, 3) and words[-1] in ("year", "fy", "quarter", "month"):
        step = {"this": 0, "current": 0, "last": -1, "previous": -1, "prior": -1, "past": -1, "next": 1,
                "coming": 1}.get(words[0])
        if step is None:
            return None
        unit = words[-1]
        if unit in ("year", "fy"):
            year = day.year + step
            window = _years_range(year, year, f"in {year}")
        elif unit == "quarter":
            index = (day.year * 4 + (day.month - 1) // 3) + step
            year, q = divmod(index, 4)
            start, end = _month_range(year, 3 * q + 1, 3)
            window = _range(start, end, f"in Q{q + 1} {year}")
        else:
            index = day.year * 12 + day.month - 1 + step
            year, month = divmod(index, 12)
            start, end = _month_range(year, month + 1, 1)
            window = _range(start, end, f"in {start.strftime('%B')} {year}")
    else:
        return None
    window["anchor"] = f"“{phrase}” = {window['text'].removeprefix('in ')}, {said}"
    return window


def extract_time(text: str, spec: Spec, anchor: Anchor | None = None) -> str:
    """Find time expressions in ``text`` (lower-cased), record them in ``spec``; returns the text without them.

    Relative dates ("last year", "this quarter", "YTD") are resolved against ``anchor``; without one they are
    reported as a problem. Two windows are kept as ``time`` and ``compare`` (the question must also say it compares
    them)."""
    windows: list[dict[str, Any]] = []
    for pattern, kind in TIME_PATTERNS:
        def repl(m: re.Match[str], kind: str = kind) -> str:
            g = m.groups()
            if kind == "relative":
                window = _relative(m.group(0).strip(), anchor)
                if window is None:
                    spec.problems.append(f"relative date “{m.group(0).strip()}” (name the year, e.g. 2024)")
                else:
                    windows.append(window)
                return " "
            if kind == "years":
                a, b = sorted((int(g[0]), int(g[1])))
                windows.append(_years_range(a, b, f"from {a} to {b}"))
            elif kind in ("half", "half_h", "half_yh"):
                if kind == "half":
                    half, year = ORDINAL[g[0]], int(g[1])
                elif kind == "half_h":
                    half, year = int(g[0]), int(g[1])
                else:
                    half, year = int(g[1]), int(g[0])
                start, end = _month_range(year, 1 + 6 * (half - 1), 6)
                windows.append(_range(start, end, f"in the {'first' if half == 1 else 'second'} half of {year}"))
            elif kind in ("quarter", "quarter_q", "quarter_yq"):
                if kind == "quarter":
                    q, year = ORDINAL[g[0]], int(g[1])
                elif kind == "quarter_q":
                    q, year = int(g[0]), _year(g[1])
                else:
                    q, year = int(g[1]), int(g[0])
                start, end = _month_range(year, 1 + 3 * (q - 1), 3)
                windows.append(_range(start, end, f"in Q{q} {year}"))
            elif kind == "month_range":
                end_year = int(g[3])
                start_year = int(g[1]) if g[1] else end_year
                start, _ = _month_range(start_year, MONTHS[g[0]], 1)
                _, end = _month_range(end_year, MONTHS[g[2]], 1)
                if start >= end:
                    spec.problems.append(f"the period “{m.group(0).strip()}” ends before it starts")
                    return " "
                windows.append(_range(start, end, f"from {start.strftime('%B %Y')} to "
                                      f"{(end - dt.timedelta(days=1)).strftime('%B %Y')}"))
            elif kind in ("month", "month_iso"):
                month = MONTHS[g[0]] if kind == "month" else int(g[1])
                year = int(g[1]) if kind == "month" else int(g[0])
                start, end = _month_range(year, month, 1)
                windows.append(_range(start, end, f"in {start.strftime('%B')} {year}"))
            elif kind == "since_month":
                start, _ = _month_range(int(g[1]), MONTHS[g[0]], 1)
                windows.append({**_range(start, dt.date(DATA_LAST_YEAR + 1, 1, 1), f"since {start.strftime('%B %Y')}"),
                                "open": "end"})
            elif kind == "since":
                windows.append({**_years_range(int(g[0]), DATA_LAST_YEAR, f"since {g[0]}"), "open": "end"})
            elif kind == "after":
                windows.append({**_years_range(int(g[0]) + 1, DATA_LAST_YEAR, f"after {g[0]}"), "open": "end"})
            elif kind == "before":
                windows.append({**_years_range(DATA_FIRST_YEAR, int(g[0]) - 1, f"before {g[0]}"), "open": "start"})
            elif kind == "until":
                windows.append({**_years_range(DATA_FIRST_YEAR, int(g[0]), f"until the end of {g[0]}"),
                                "open": "start"})
            elif kind in ("fiscal", "year"):
                year = _year(g[0])
                windows.append(_years_range(year, year, f"in {year}"))
            return " "
        text = pattern.sub(repl, text)
    if len(windows) == 1:
        spec.time = windows[0]
    elif len(windows) == 2:
        first, second = sorted(windows, key=lambda w: w["start"])
        spec.time, spec.compare = first, second
    elif len(windows) > 2:
        spec.problems.append("more than one time window (" + ", ".join(w["text"] for w in windows) + ")")
        spec.time = windows[0]
    return text


_NUM = r"(?:€|eur\s*)?\s*(\d[\d,]*(?:\.\d+)?)\s*(k|m|mn|mio|million|millions|thousand|bn|billion)?\b(?:\s*(?:eur|euro|euros|€))?"
BETWEEN = re.compile(rf"\bbetween\s+{_NUM}\s*(?:and|-|to)\s*{_NUM}")


# nouns whose number is a count the engine cannot compare (only a number of projects is counted, see _finish)
COUNTED_NOUNS = frozenset("""invoices invoice postings posting entries entry bookings booking employees employee people
staff customers customer vendors vendor suppliers supplier transactions transaction lines line items item orders order
departments department""".split())


def _amount(number: str, scale: str | None) -> float:
    return float(number.replace(",", "")) * _SCALE.get(scale or "", 1.0)


def extract_threshold(text: str, spec: Spec) -> str:
    """A numeric comparison ("over 1 million", "between 1m and 2m") → ``spec.threshold``; returns the text without
    it."""
    def between(m: re.Match[str]) -> str:
        # "between 1 and 2 million": a scale said once holds for both numbers
        low, high = sorted((_amount(m.group(1), m.group(2) or m.group(4)), _amount(m.group(3), m.group(4) or m.group(2))))
        if spec.threshold is not None:
            spec.problems.append("more than one numeric comparison")
        spec.threshold = {"op": "between", "value": low, "high": high}
        return " "

    def repl(m: re.Match[str]) -> str:
        following = re.match(r"\s*([a-z]+)", text[m.end():])
        if following and following.group(1) in COUNTED_NOUNS:
            # "vendors with more than 100 invoices": a number of things, not an amount of the measure
            spec.problems.append(f"a comparison with a number of {following.group(1)}")
            return " "
        if m.group(1):
            word, number, scale = m.group(1), m.group(2), m.group(3)
            op = ">" if re.match(r"over|above|more|greater|exceed|larger|bigger|higher", word) else "<"
            if re.match(r"at\s+least", word):
                op = ">="
            elif re.match(r"at\s+most", word):
                op = "<="
        else:
            op, number, scale = m.group(4), m.group(5), m.group(6)
        value = float(number.replace(",", "")) * _SCALE.get(scale or "", 1.0)
        if spec.threshold is not None:
            spec.problems.append("more than one numeric comparison")
        spec.threshold = {"op": op, "value": value}
        return " "
    return THRESHOLD.sub(repl, BETWEEN.sub(between, text))
