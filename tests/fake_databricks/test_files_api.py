"""The fake workspace's Files API, driven by the real databricks-sdk client (``WorkspaceClient().files``) over HTTP."""

from __future__ import annotations

import io

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.errors import NotFound, PermissionDenied, Unauthenticated

from fake_databricks import FakeWarehouse

DIR = "/Volumes/main/ops/usage/ctg-app"


def client(wh: FakeWarehouse, token: str | None = None):
    kwargs = {"host": wh.base_url, "token": token or wh.token, "auth_type": "pat", "retry_timeout_seconds": 2,
              "http_timeout_seconds": 2}
    if hasattr(Config, "disable_experimental_files_api_client"):
        kwargs["disable_experimental_files_api_client"] = True
    return WorkspaceClient(config=Config(**kwargs)).files


def test_upload_list_download_delete_round_trip(fake_warehouse):
    files = client(fake_warehouse)
    with pytest.raises(NotFound):
        list(files.list_directory_contents(DIR))
    files.upload(f"{DIR}/a.jsonl.gz", io.BytesIO(b"\x1f\x8b data"), overwrite=False)
    files.upload(f"{DIR}/b.jsonl.gz", io.BytesIO(b"bbb"), overwrite=False)
    entries = sorted(files.list_directory_contents(DIR), key=lambda e: e.path)
    assert [(e.path, e.name, e.file_size, e.is_directory) for e in entries] == [
        (f"{DIR}/a.jsonl.gz", "a.jsonl.gz", 7, False), (f"{DIR}/b.jsonl.gz", "b.jsonl.gz", 3, False)]
    assert all(e.last_modified for e in entries)
    download = files.download(f"{DIR}/a.jsonl.gz")
    assert download.contents.read() == b"\x1f\x8b data" and download.content_length == 7
    assert files.get_metadata(f"{DIR}/b.jsonl.gz").content_length == 3
    files.delete(f"{DIR}/a.jsonl.gz")
    with pytest.raises(NotFound):
        files.delete(f"{DIR}/a.jsonl.gz")
    with pytest.raises(NotFound):
        files.download(f"{DIR}/a.jsonl.gz").contents.read()
    assert fake_warehouse.files.list_files(DIR) == [f"{DIR}/b.jsonl.gz"]
    assert fake_warehouse.files.count("PUT") == 2 and fake_warehouse.files.count("DELETE") == 2


def test_no_overwrite_conflicts_and_listing_pages(fake_warehouse):
    files = client(fake_warehouse)
    files.upload(f"{DIR}/x", io.BytesIO(b"1"), overwrite=False)
    with pytest.raises(Exception) as info:
        files.upload(f"{DIR}/x", io.BytesIO(b"2"), overwrite=False)
    assert getattr(info.value, "error_code", "") == "ALREADY_EXISTS"
    assert fake_warehouse.files.read(f"{DIR}/x") == b"1"
    for i in range(7):
        fake_warehouse.files.put(f"{DIR}/p/{i}", b"")
    assert len(list(files.list_directory_contents(f"{DIR}/p", page_size=3))) == 7
    assert fake_warehouse.files.count("GET", "directories") == 3  # three pages


def test_auth_and_injected_faults(fake_warehouse):
    with pytest.raises(Unauthenticated):
        client(fake_warehouse, token="wrong").upload(f"{DIR}/y", io.BytesIO(b""))
    files = client(fake_warehouse)
    fake_warehouse.files.unavailable = 403
    with pytest.raises(PermissionDenied):
        files.upload(f"{DIR}/y", io.BytesIO(b""))
    fake_warehouse.files.unavailable = None
    fake_warehouse.files.fail_next(1, 500, method="DELETE")
    files.upload(f"{DIR}/y", io.BytesIO(b"y"))
    with pytest.raises(Exception) as info:
        files.delete(f"{DIR}/y")
    assert getattr(info.value, "error_code", "") == "INTERNAL_ERROR"
    files.delete(f"{DIR}/y")  # the fault fired once
    with pytest.raises(Exception):
        files.upload("/not-a-volume/y", io.BytesIO(b""))
