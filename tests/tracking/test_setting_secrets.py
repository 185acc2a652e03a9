"""A secret in a setting never reaches a command's output, and never reaches an event.

- Every command runs as its real console script in a subprocess, against the fake warehouse over the wire, with a
  token pasted inside ``TRACKING_PARK_VOLUME`` (``x<token>y``, so no word boundary helps): the park step's warning
  (``ParkConfigError: … got '…'``) used to go out through ``ctg-app``'s own log handler, around the redactor.
- A setting that does not parse is named in the error without its value (``int()`` quotes it).
- ``TRACKING_APP_NAME`` / ``TRACKING_DEFAULT_USER`` are written into every event: a configured secret or a token shape
  in them is refused when the settings load, naming the setting and not echoing the value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctg_app.settings import Settings, SettingsError
from ctg_app.tracking.recording.tracker import Tracker

ACCESS_TOKEN = "fake-access-token-park-51f0"  # secret because DATABRICKS_ACCESS_TOKEN holds it, not by its shape
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ"
PAT = "dapi" + "0123456789abcdef" * 2
BIN = Path(sys.executable).parent
COMMANDS = {
    "selftest": ["ctg-app", "selftest"],
    "flush-spool": ["flush-spool"],
    "flush-spool-status": ["flush-spool", "--status", "--json"],
    "usage-report": ["ctg-app", "usage-report", "--report", "all"],
    "check-training": ["ctg-app", "check-training"],
}


def _env(fake_warehouse, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRACKING_", "CTG_"))}
    env.update(fake_warehouse.env())
    env.update({"TRACKING_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
                "CTG_SAMPLE_DB_PATH": str(tmp_path / "sample.sqlite3"), "WAREHOUSE_TIMEOUT_S": "3"})
    env.update(settings)
    return env


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=180)
    return done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_token_in_the_park_volume_is_redacted_in_every_command(command, fake_warehouse, tmp_path):
    tokens = (fake_warehouse.token, JWT, PAT)  # the configured access token is secret by setting, not by shape
    volume = "volumes:" + ":".join(f"x{token}y" for token in tokens)  # not a volume path: the park step complains
    env = _env(fake_warehouse, tmp_path, TRACKING_PARK_VOLUME=volume)
    Tracker(Settings(spool_path=Path(env["TRACKING_SPOOL_PATH"]))).record("app_start")  # something to flush
    output = _run(command, env)
    if command[0] == "flush-spool" or command[1] == "selftest":  # the park step ran and said why it could not
        assert "TRACKING_PARK_VOLUME" in output, output
    for token in tokens:
        assert token not in output, output


def test_the_selftest_park_warning_keeps_its_message_without_the_token(fake_warehouse, tmp_path):
    env = _env(fake_warehouse, tmp_path, TRACKING_PARK_VOLUME=f"x{fake_warehouse.token}y")
    output = _run(COMMANDS["selftest"], env)
    warning = next(line for line in output.splitlines() if "ParkConfigError" in line)
    assert "got 'x[REDACTED]y'" in warning, warning


def test_a_setting_that_does_not_parse_is_named_without_its_value(fake_warehouse, tmp_path):
    pasted = "hunter2-correct-horse-battery"  # a password in the wrong setting: no token shape, no secret setting
    for name in ("TRACKING_ENABLED", "SPOOL_MAX_MB", "WAREHOUSE_TIMEOUT_S"):
        output = _run(COMMANDS["selftest"], _env(fake_warehouse, tmp_path, **{name: pasted}))
        assert f"SettingsError: {name}:" in output, output
        assert pasted not in output, output


EVENT_SETTINGS = {"TRACKING_APP_NAME": "ctg-app-{}", "TRACKING_DEFAULT_USER": "{}@eleviogroup.com"}
SHAPES = {
    "configured secret": ACCESS_TOKEN,
    "dapi": PAT,
    "bearer": "Bearer abcdefghijklmnop",
    "jwt": JWT,
    "long hex": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
    "long base64": "QWxhZGRpbjpvcGVuIHNlc2FtZQ9xYzRkZmVkYmI",
}


@pytest.mark.parametrize("setting", EVENT_SETTINGS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_secret_in_a_setting_written_into_events_is_refused_at_load(setting, shape):
    value = EVENT_SETTINGS[setting].format(shape)
    env = {setting: value, "DATABRICKS_ACCESS_TOKEN": ACCESS_TOKEN}
    with pytest.raises(SettingsError, match=setting) as refused:
        Settings.from_sources(env)
    assert shape not in str(refused.value) and value not in str(refused.value)


@pytest.mark.parametrize("setting,value", [
    ("TRACKING_APP_NAME", "elevio-ctg-chatbot-vanna"),
    ("TRACKING_APP_NAME", "elevio-ctg-chatbot-vanna-selftest-2024-production-eu-west"),
    ("TRACKING_DEFAULT_USER", "ctg_chatbot_user@eleviogroup.com"),
    ("TRACKING_DEFAULT_USER", "Anna.Keller-Schmidt2024@eleviogroup.com"),
])
def test_plain_names_and_addresses_still_load(setting, value):
    settings = Settings.from_sources({setting: value, "DATABRICKS_ACCESS_TOKEN": ACCESS_TOKEN})
    assert value in (settings.app_name, settings.default_user)


def test_the_command_refuses_a_token_in_the_app_name_without_echoing_it(fake_warehouse, tmp_path):
    output = _run(COMMANDS["selftest"], _env(fake_warehouse, tmp_path, TRACKING_APP_NAME=f"ctg-{JWT}"))
    assert "TRACKING_APP_NAME holds a secret" in output, output
    assert JWT not in output
    spool = tmp_path / "spool.sqlite3"
    assert not spool.exists() or JWT.encode() not in spool.read_bytes()  # no event carries it
