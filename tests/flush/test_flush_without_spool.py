"""``flush-spool`` drains the park volume when there is no local spool (issue 21): a Databricks job does that while
the app is stopped. Real databricks-sdk Files API client and real connector against the fake workspace."""

from __future__ import annotations

import json

from ctg_app.settings import reload_settings
from ctg_app.tracking.delivery.cli import EXIT_CONFIG, EXIT_OK
from ctg_app.tracking.delivery.cli import main as flush_spool
from ctg_app.tracking.delivery.park import Parker
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import fill, make_events, warehouse_ids

VOLUME = "/Volumes/main/ops/usage/ctg-app"


def park_and_lose_the_container(monkeypatch, tmp_path, wh, n: int) -> list:
    """The app parked ``n`` events on the volume, then its container (and spool) went away."""
    monkeypatch.setenv("TRACKING_PARK_VOLUME", VOLUME)
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    events = make_events(n)
    fill(spool, events)
    assert Parker(settings, spool).park_pending().parked == n
    spool.close()
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "job-has-no-spool" / "usage-spool.sqlite3"))
    reload_settings()
    return events


def test_a_job_without_a_local_spool_delivers_the_parked_segments(flush_env, monkeypatch, tmp_path, capsys) -> None:
    wh = flush_env
    events = park_and_lose_the_container(monkeypatch, tmp_path, wh, 1200)
    assert wh.files.list_files(VOLUME + "/")
    assert flush_spool(["--json"]) == EXIT_OK  # was exit 3: "the spool ... does not exist"
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "ok" and report["delivered"] == report["inserted"] == 1200
    assert sorted(warehouse_ids(wh)) == sorted(e[0] for e in events)
    assert wh.files.list_files(VOLUME + "/") == []
    assert not (tmp_path / "job-has-no-spool").exists()  # no spool was created where the app's would be
    assert flush_spool([]) == EXIT_OK and len(warehouse_ids(wh)) == 1200  # a second run: nothing left, no duplicate


def test_without_a_spool_or_a_park_volume_it_is_still_a_configuration_error(flush_env, monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "nowhere" / "spool.sqlite3"))
    reload_settings()
    assert flush_spool([]) == EXIT_CONFIG


def test_a_volume_that_does_not_exist_is_a_configuration_error(flush_env, monkeypatch, tmp_path, capsys) -> None:
    """The fake answers 404 for a volume nobody created (it used to accept any /Volumes/ path); the product says so
    instead of reporting an empty park volume."""
    monkeypatch.setenv("TRACKING_PARK_VOLUME", "/Volumes/main/ops/no_such_volume/ctg-app")
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "nowhere" / "spool.sqlite3"))
    reload_settings()
    assert flush_spool(["--json"]) == EXIT_CONFIG
    out = json.loads(capsys.readouterr().out)
    assert "/Volumes/main/ops/no_such_volume does not exist" in out["error"]


def test_a_volume_without_the_grant_is_a_configuration_error(flush_env, monkeypatch, tmp_path, capsys) -> None:
    wh = flush_env
    park_and_lose_the_container(monkeypatch, tmp_path, wh, 10)
    wh.files.revoke("/Volumes/main/ops/usage")  # READ VOLUME revoked: 403
    assert flush_spool(["--json"]) == EXIT_CONFIG
    assert "access denied" in json.loads(capsys.readouterr().out)["error"]
    assert len(wh.files.list_files(VOLUME + "/")) == 1  # still parked, nothing lost
