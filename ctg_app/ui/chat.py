"""Chat page (registered in ``ctg_app/app.py``; see there why the folder is not named ``pages``)."""

from ctg_app.ui.chat_page import render

render()
