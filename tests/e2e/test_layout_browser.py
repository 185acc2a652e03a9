"""The page as a person sees it, in a real headless chromium: the first view on a phone opens at the top (issue 21),
and screenshots at 1400 px and 390 px (chat first view, an answer with a table, the Usage analytics page as admin)
go to ``test-artifacts/`` (gitignored) for a person to look at."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, full_page_screenshot
from .test_conversation_browser import INPUT, WELCOME_QUESTION, _ask

pytestmark = pytest.mark.browser

DEFAULT_USER = "ctg_chatbot_user@eleviogroup.com"
MAIN = "[data-testid='stAppScrollToBottomContainer']"
SCROLL_TOP = f"document.querySelector(\"{MAIN}\").scrollTop"
AT_BOTTOM = (f"(() => {{ const e = document.querySelector(\"{MAIN}\"); "
             "return e.scrollHeight - e.scrollTop - e.clientHeight < 2; })()")


def _identity_height(page) -> float:
    box = page.locator("[data-testid='stSidebar'] [data-testid='stText']").first.bounding_box()
    assert box is not None
    return box["height"]


def _page(browser, url: str, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector(INPUT)
    page.get_by_role("button", name=WELCOME_QUESTION).wait_for()
    return context, page


def test_the_first_view_on_a_phone_opens_at_the_top_and_answers_are_followed(browser, start_app):
    server = start_app()
    context, page = _page(browser, server.url, 390, 844)
    try:
        assert page.evaluate(f"document.querySelector(\"{MAIN}\").scrollHeight") > 844  # the welcome is taller
        page.wait_for_timeout(2500)  # Streamlit's stick-to-bottom has run by now (it scrolled within ~0.3 s)
        assert page.evaluate("window.scrollY") == 0
        assert page.evaluate(SCROLL_TOP) == 0  # was 289 of 1133: the title out of sight
        title = page.get_by_role("heading", name="CTG project-controlling assistant").bounding_box()
        assert title is not None and title["y"] >= 0
        # the conversation is still followed: each answer scrolls into view as before
        for question in ("How many projects are there?", "What is the margin per project?"):
            _ask(page, question)
            page.wait_for_timeout(1000)
            assert page.evaluate(AT_BOTTOM), page.evaluate(f"[{SCROLL_TOP}, document.querySelector(\"{MAIN}\")"
                                                           ".scrollHeight]")
    finally:
        context.close()


@pytest.mark.parametrize("width,height", [(1400, 1000), (390, 844)], ids=["1400", "390"])
def test_screenshots_of_chat_answer_and_usage_page(browser, start_app, width, height):
    server = start_app(ADMIN_EMAILS=DEFAULT_USER)
    context, page = _page(browser, server.url, width, height)
    try:
        page.wait_for_timeout(1500)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"ui-first-view-{width}.png"))  # what the screen shows on opening
        if width > 390:  # the sidebar is open: the signed-in e-mail is one line on the chat page ...
            chat_identity = _identity_height(page)
        _ask(page, "What were the actual costs per month in 2024?")
        page.wait_for_selector("[data-testid='stDataFrame']")
        full_page_screenshot(page, f"ui-answer-table-{width}.png")
        page.goto(server.url.rstrip("/") + "/analytics")
        page.get_by_role("heading", name="Usage analytics").wait_for()
        page.get_by_text("Last flush").first.wait_for()
        page.wait_for_timeout(1500)
        full_page_screenshot(page, f"ui-usage-analytics-{width}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # nothing runs off the right edge
        if width > 390:  # ... and on the Usage page (it used to break there as "…eleviogroup.co" / "m")
            assert _identity_height(page) == chat_identity
    finally:
        context.close()
