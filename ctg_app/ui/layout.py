"""Page-level layout fixes that Streamlit has no setting for.

The first view opens at the top. With a chat input pinned to the bottom, Streamlit's main container "sticks to the
bottom": when a session opens it animates the container to its end. On a phone (390 px) the welcome message is taller
than the screen, so the first view opened scrolled down, with the title and the start of the welcome out of sight
(measured in headless chromium at 390x844: the main container's scrollTop was 289 px of 1133). A small script
scrolls it back to the top until the user does anything (wheel, touch, key, pointer) or a few seconds have passed.
Scrolled away from its end, Streamlit's container stops following the bottom, so when the user's first question shows
the script scrolls down again until Streamlit follows the conversation by itself, as it did before.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

HOLD_MS = 8000  # how long the first view is held at the top while the page still renders, unless the user acts
FOLLOW_MS = 3000  # after the user's first question shows, how long the script hands the bottom back to Streamlit

# The script runs in the component's iframe, which is same-origin with the app (components.html), so it reaches the
# app's document as window.parent.document. It only ever sets the main container's scroll position.
# 1. hold: scroll to the top until the user acts or HOLD_MS passed; a synthetic wheel event first ends a running
#    scroll-to-bottom animation (Streamlit stops it on a wheel), else Streamlit would keep its "stick" on;
# 2. follow: when the user's first message shows (the first question), scroll to the bottom again, until Streamlit
#    has seen two scroll events at the bottom with an unchanged height: that turns its "stick to the bottom" back on, so
#    the conversation is followed as before. A nudge of 2 px makes the second event when already at the bottom.
_TOP_SCRIPT = """<script>
(() => {
  const doc = window.parent.document;
  const main = () => doc.querySelector("[data-testid='stAppScrollToBottomContainer']");
  const asked = () => doc.querySelector("[data-testid='stChatMessageAvatarUser']") !== null;
  const events = ["wheel", "touchstart", "keydown", "pointerdown"];
  const started = Date.now();
  let holding = true;
  const release = (event) => {
    if (event && !event.isTrusted) return;  // our own nudge below, not the user
    holding = false;
    events.forEach((type) => doc.removeEventListener(type, release, true));
  };
  events.forEach((type) => doc.addEventListener(type, release, true));
  window.addEventListener("unload", () => release());
  let following = 0;
  const tick = () => {
    const el = main();
    if (holding && Date.now() - started > __HOLD_MS__) release();
    if (holding && el && el.scrollTop > 0) {
      el.dispatchEvent(new WheelEvent("wheel"));  // ends Streamlit's scroll animation, as a user's wheel would
      el.scrollTop = 0;
    }
    if (!following && asked()) following = Date.now();
    if (following && el) {
      if (Date.now() - following > __FOLLOW_MS__) {
        el.scrollTop = el.scrollHeight;
        return;
      }
      const bottom = el.scrollHeight - el.clientHeight;
      el.scrollTop = el.scrollTop >= bottom - 1 ? bottom - 2 : bottom;
      setTimeout(tick, 150);
      return;
    }
    setTimeout(tick, 120);  // slower than Streamlit's 100 ms scroll throttle: it sees each scroll to the top
  };
  tick();
})();
</script>""".replace("__HOLD_MS__", str(HOLD_MS)).replace("__FOLLOW_MS__", str(FOLLOW_MS))


_FIRST_VIEW_KEY = "ctg_first_view"
_FIRST_VIEW_CSS = f"<style>.st-key-{_FIRST_VIEW_KEY} {{ display: none; }}</style>"  # no 16 px flex gap in the sidebar

# the signed-in e-mail (app.py, on every page): wrap at any character instead of mid-word or off the sidebar
_IDENTITY_CSS = """<style>
section[data-testid="stSidebar"] [data-testid="stText"], section[data-testid="stSidebar"] .stText
  { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.85rem; }
</style>"""


def open_at_top() -> None:
    """Keep the page at its top while the first view renders (call on a session's first run only: later runs must
    follow the conversation down). The script's iframe sits in a hidden sidebar container (a hidden iframe still runs),
    so neither column gets a gap."""
    st.html(_FIRST_VIEW_CSS)  # style-only HTML goes to Streamlit's event container: it takes no space
    with st.sidebar.container(key=_FIRST_VIEW_KEY):
        components.html(_TOP_SCRIPT, height=0)


def style_identity() -> None:
    """The sidebar's signed-in e-mail in a small font that wraps anywhere, on every page (it used to be styled by the
    chat page only, so on the Usage page at 1400 px it broke as "…eleviogroup.co" / "m")."""
    st.html(_IDENTITY_CSS)
