"""The off-box park tier (issue 11, item 3) through the real databricks-sdk Files API client and the real connector,
against the fake workspace: outage → segments parked → container lost → a new flusher delivers exactly once."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from ctg_app.settings import reload_settings
from ctg_app.tracking.delivery.cli import main as flush_spool
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.delivery.park import Parker, decode_segment
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import TABLE, fill, make_events, warehouse_ids

VOLUME = "/Volumes/main/ops/usage/ctg-app"


@pytest.fixture
def park_env(flush_env, monkeypatch):
    monkeypatch.setenv("TRACKING_PARK_VOLUME", VOLUME + "/")
    monkeypatch.setenv("TRACKING_PARK_AFTER_S", "0.5")
    reload_settings()
    return flush_env


def outage(wh) -> None:
    """The SQL warehouse answers 503 to everything (the Files API, a separate workspace service, stays up)."""
    wh.faults.next(100_000, http_status=503)


def run_until_parked(settings, spool) -> list:
    reports = [Flusher(settings, spool=spool).run(ignore_backoff=True)]
    assert reports[0].outcome == "unreachable" and reports[0].parked == 0  # not yet: under TRACKING_PARK_AFTER_S
    time.sleep(0.6)
    reports.append(Flusher(settings, spool=spool).run(ignore_backoff=True))
    return reports


def test_outage_parks_segments_and_a_new_container_delivers_every_event_exactly_once(park_env, tmp_path,
                                                                                     monkeypatch):
    wh = park_env
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    events = make_events(5000)
    fill(spool, events)
    outage(wh)
    reports = run_until_parked(settings, spool)
    assert reports[-1].parked == 5000
    assert spool.counts() == {"pending": 0, "delivered": 0, "dead": 0, "parked": 5000}
    segments = wh.files.list_files(VOLUME + "/")
    assert segments and all(p.endswith(".jsonl.gz") for p in segments)
    lines = [json.loads(line) for p in segments for line in gzip.decompress(wh.files.read(p)).splitlines()]
    assert sorted(obj["id"] for obj in lines) == sorted(e[0] for e in events)
    assert wh.query(f"SHOW TABLES IN {TABLE.rsplit('.', 1)[0]}") == []  # nothing reached the warehouse

    # The container is lost: its spool with it. A fresh one (a new replica, a restart) knows nothing of the events.
    spool.close()
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "new-container" / "spool.sqlite3"))
    fresh = reload_settings()
    wh.faults.clear()
    report = Flusher(fresh).run()
    assert report.outcome == "ok" and report.unparked == 5000 and report.inserted == 5000
    ids = warehouse_ids(wh)
    assert len(ids) == 5000 and sorted(ids) == sorted(e[0] for e in events)
    assert wh.files.list_files(VOLUME + "/") == []  # deleted once confirmed
    # The old spool's rows, parked in segments that are gone, count as delivered when it is flushed again.
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(settings.spool_path))
    again = Flusher(reload_settings()).run()
    assert again.unparked == 0 and Spool(settings.spool_path).counts()["delivered"] == 5000
    assert len(warehouse_ids(wh)) == 5000


def test_parked_then_crash_before_the_delete_still_inserts_each_event_once(park_env):
    wh = park_env
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    events = make_events(1200)
    fill(spool, events)
    parker = Parker(settings, spool, timeout_s=2, segment_rows=500)
    assert parker.park_pending().parked == 1200
    assert len(wh.files.list_files(VOLUME + "/")) == 3
    # The warehouse confirms the first segment, then the delete fails (the container dies right there): it stays.
    wh.files.fail_next(1, 500, method="DELETE")
    first = Flusher(settings, spool=spool).run()
    assert first.park_error and first.unparked == 0  # not confirmed as done: the segment was not deleted
    assert len(warehouse_ids(wh)) == 500 and len(wh.files.list_files(VOLUME + "/")) == 3
    # Another flusher re-sends the undeleted segment: it inserts nothing twice.
    second = Flusher(reload_settings(), spool=Spool(settings.spool_path)).run()
    assert second.unparked == 1200 and second.inserted == 700 and second.park_error is None
    ids = warehouse_ids(wh)
    assert len(ids) == 1200 and len(set(ids)) == 1200
    assert wh.files.list_files(VOLUME + "/") == []


@pytest.mark.parametrize("status", [403, 500])
def test_volume_unavailable_keeps_events_in_the_spool_and_counts_them(park_env, status, capsys):
    wh = park_env
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    fill(spool, make_events(300))
    outage(wh)
    wh.files.unavailable = status
    report = run_until_parked(settings, spool)[-1]
    assert report.parked == 0 and report.park_error
    assert spool.counts() == {"pending": 300, "delivered": 0, "dead": 0}
    assert flush_spool(["--status", "--json"]) == 0
    status_doc = json.loads(capsys.readouterr().out)
    assert status_doc["pending"] == 300 and status_doc["park"]["park_failed"] == 300
    assert status_doc["park"]["volume_error"] and status_doc["park"]["last_park_error"]
    assert settings.databricks_access_token not in json.dumps(status_doc)


def test_status_shows_parked_segments_and_their_age(park_env, capsys):
    wh = park_env
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    fill(spool, make_events(50))
    Parker(settings, spool, timeout_s=2).park_pending()
    assert flush_spool(["--status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["park"]["parked_local"] == 50 and len(doc["park"]["parked_segments"]) == 1
    segment = doc["park"]["parked_segments"][0]
    assert segment["age_s"] is not None and 0 <= segment["age_s"] < 60 and segment["bytes"] > 0
    assert flush_spool(["--status"]) == 0
    text = capsys.readouterr().out
    assert "parked:" in text and VOLUME in text and "1 segment" in text


def test_without_a_volume_nothing_touches_the_files_api(flush_env):
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    fill(spool, make_events(10))
    outage(flush_env)
    Flusher(settings, spool=spool).run()
    flush_env.faults.clear()
    assert Flusher(settings, spool=spool).run(ignore_backoff=True).delivered == 10
    assert flush_env.files.calls == []


def test_segment_round_trip_keeps_every_field(park_env):
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    events = make_events(20)
    fill(spool, events)
    Parker(settings, spool, timeout_s=2).park_pending()
    (path,) = park_env.files.list_files(VOLUME + "/")
    decoded, texts = decode_segment(park_env.files.read(path))
    assert decoded == events and len(texts) == 20


def test_a_volume_path_that_is_not_a_volume_is_a_clear_error_and_the_flush_goes_on(flush_env, monkeypatch, capsys):
    monkeypatch.setenv("TRACKING_PARK_VOLUME", "/tmp/not-a-volume")
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    fill(spool, make_events(5))
    report = Flusher(settings, spool=spool).run()
    assert report.delivered == 5 and report.park_error == "ParkConfigError"
    assert flush_spool(["--status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "TRACKING_PARK_VOLUME must look like /Volumes/" in doc["park"]["volume_error"]


def test_the_park_tier_logs_in_as_the_service_principal_like_databricks_apps(tmp_path, monkeypatch):
    from fake_databricks import FakeWarehouse

    with FakeWarehouse(oauth_clients={"sp-id": "sp-secret"}) as wh:
        for key, value in wh.oauth_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "spool.sqlite3"))
        monkeypatch.setenv("TRACKING_PARK_VOLUME", VOLUME)
        settings = reload_settings()
        spool = Spool(settings.spool_path)
        fill(spool, make_events(30))
        assert Parker(settings, spool, timeout_s=2).park_pending().parked == 30
        assert wh.tokens_issued >= 1 and len(wh.files.list_files(VOLUME + "/")) == 1
        report = Flusher(settings, spool=spool).run()
        assert report.unparked == 30 and len(warehouse_ids(wh)) == 30


def test_usage_page_shows_parked_segments_and_their_age(park_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ctg_app.ui import analytics

    monkeypatch.setenv("ADMIN_EMAILS", "test@example.com")
    settings = reload_settings()
    spool = Spool(settings.spool_path)
    fill(spool, make_events(30))
    Parker(settings, spool, timeout_s=2).park_pending()
    app = str(analytics.PAGE_PATH.parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=30)
    at.user = {"email": "test@example.com"}
    at.run()
    at.switch_page(str(analytics.PAGE_PATH)).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parked segments"] == "1" and metrics["Parked here"] == "30"
    assert metrics["Oldest parked"].endswith("min")
    assert any("segment" in frame.value.columns for frame in at.dataframe)
