"""The whole conversation in a real headless chromium, at desktop (1400 px) and phone (390 px) widths.

Welcome questions → a question → a follow-up → Edit SQL (its own turn) → columns → download (opened with openpyxl:
formats, header, second sheet) → chart → summary → feedback; the spool must hold exactly the expected events.
Screenshots go to ``test-artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
import sqlite3

import openpyxl
import pytest

from .conftest import full_page_screenshot

pytestmark = pytest.mark.browser

WELCOME_QUESTION = "Compare budget and actual costs per project"
TYPED = "What were the actual costs per month in 2024?"
INPUT = "[data-testid='stChatInputTextArea']"
EDITED_SQL = "SELECT cost_category, SUM(amount) AS total_actual_cost FROM actual_costs GROUP BY cost_category"


def _page(browser, url: str, width: int, height: int):
    context = browser.new_context(accept_downloads=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector(INPUT)
    return context, page


def _settle(page) -> None:
    """Wait until Streamlit has finished the script run the last interaction started."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=30_000)
    page.wait_for_timeout(300)


def _assistant_count(page) -> int:
    return page.locator("[data-testid='stChatMessage']").count()


def _ask(page, question: str) -> None:
    before = _assistant_count(page)
    page.fill(INPUT, question)
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stChatMessage']\").length > {before}")
    _settle(page)


def _details(server) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(f"file:{server.spool_path}?mode=ro", uri=True, timeout=5)
    try:
        return [(a, json.loads(d or "{}")) for a, d in conn.execute("SELECT action, details FROM events ORDER BY seq")]
    finally:
        conn.close()


def test_conversation_flow_at_desktop_width(browser, start_app, tmp_path):
    server = start_app()
    context, page = _page(browser, server.url, 1400, 1000)
    try:
        # first screen: a welcome with example questions as buttons, nothing recorded but app_start
        page.get_by_role("button", name=WELCOME_QUESTION).wait_for()
        full_page_screenshot(page, "01-welcome-1400.png")
        assert [e[0] for e in server.events()] == ["app_start"]

        page.get_by_role("button", name=WELCOME_QUESTION).click()
        page.wait_for_selector("[data-testid='stDataFrame']")
        _settle(page)
        page.get_by_text("The chart shows the top 30 of 120 rows").wait_for()
        assert page.locator(".js-plotly-plot").count() == 1

        _ask(page, TYPED)
        # only the latest answer offers follow-ups (the previous one's fade out when the rerun finishes)
        page.wait_for_function("[...document.querySelectorAll('strong')]"
                               ".filter(e => e.textContent === 'Follow-up questions').length === 1")
        full_page_screenshot(page, "02-two-answers-1400.png")

        # a follow-up button of the latest answer
        followup = page.locator("[data-testid='stChatMessage'] button", has_text="?").last
        before = _assistant_count(page)
        followup.click()
        page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stChatMessage']\").length > {before}")
        _settle(page)

        # Edit SQL as its own turn: the last answer's editor
        page.get_by_text("Edit SQL and run it again").last.click()
        editor = page.locator("[data-testid='stTextArea'] textarea").last
        editor.fill(EDITED_SQL)
        editor.press("Control+Enter")  # commit the text area's value before the click
        _settle(page)
        before = _assistant_count(page)
        page.get_by_role("button", name="Run edited SQL").last.click()
        page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stChatMessage']\").length > {before}")
        _settle(page)
        page.locator("[data-testid='stChatMessage'] strong", has_text="Edited SQL").wait_for()

        # a misspelt column: the database's reason is shown, and the conversation goes on
        page.get_by_text("Edit SQL and run it again").last.click()
        editor = page.locator("[data-testid='stTextArea'] textarea").last
        editor.fill("SELECT cost_categry FROM actual_costs")
        editor.press("Control+Enter")
        _settle(page)
        page.get_by_role("button", name="Run edited SQL").last.click()
        page.get_by_text("no such column: cost_categry").wait_for()
        _settle(page)

        # remove a column from the edited turn's table (the second-to-last multiselect: the failing edit has none)
        page.locator("[data-testid='stMultiSelect']").last.locator("button[aria-label='Remove Cost category']").click()
        _settle(page)

        # download the edited turn's Excel
        with page.expect_download() as info:
            page.locator("[data-testid='stDownloadButton'] button").last.click()
        download = info.value
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        _settle(page)

        # feedback: 👍 on the edited answer, 👎 with a reason on the first one
        page.get_by_role("button", name="Helpful", exact=True).last.click()
        _settle(page)
        page.get_by_role("button", name="Not helpful").first.click()
        _settle(page)
        page.get_by_text("What was wrong? (optional)").wait_for()
        full_page_screenshot(page, "03-conversation-1400.png")
    finally:
        context.close()

    assert download.suggested_filename.startswith("ctg-") and download.suggested_filename.endswith(".xlsx")
    workbook = openpyxl.load_workbook(target)
    assert workbook.sheetnames == ["Results", "About"]
    sheet = workbook["Results"]
    header = [c.value for c in sheet[1]]
    assert header == ["Total actual cost"]  # the removed column is not in the file
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    assert sheet["A2"].number_format == '"€ "#,##0;"€ -"#,##0'
    about = {row[0]: row[1] for row in workbook["About"].iter_rows(values_only=True)}
    assert about["SQL"] == EDITED_SQL

    events = server.wait_for_action("answer_feedback")
    actions = [e[0] for e in server.events()]
    question = ["generate_question", "sql_query", "execute_sql", "generate_chart", "generate_summary"]
    assert actions == ["app_start", *question, *question, *question, "edit_sql", "generate_chart", "generate_summary",
                       "sql_error", "select_columns", "download_results", "answer_feedback", "answer_feedback"]
    assert {e[2] for e in events if e[0] != "sql_error"} == {"ok"}
    feedback = [d for a, d in _details(server) if a == "answer_feedback"]
    assert [f["helpful"] for f in feedback] == [True, False]
    assert feedback[0]["edited"] is True


def test_conversation_at_phone_width(browser, start_app):
    server = start_app()
    context, page = _page(browser, server.url, 390, 844)
    try:
        page.get_by_role("button", name=WELCOME_QUESTION).wait_for()
        full_page_screenshot(page, "04-welcome-390.png")
        _ask(page, "What is the estimate at completion per project?")
        page.wait_for_selector("[data-testid='stDataFrame']")
        page.get_by_text("Answered as:").first.wait_for()  # the engine's interpretation, above the answer
        full_page_screenshot(page, "05-answer-390.png")
        # nothing runs off the right edge: the page is no wider than the phone
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1
    finally:
        context.close()
    assert [e[0] for e in server.events()] == ["app_start", "generate_question", "sql_query", "execute_sql",
                                               "generate_chart", "generate_summary"]
