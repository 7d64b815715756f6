"""Streaming the bulk-operation result to disk (requests, mocked with `responses`)."""

from __future__ import annotations

import pytest
import requests
import responses

from vipsync.connectors.shopify.bulk import download_result
from vipsync.errors import PermanentSourceError, TransientSourceError

URL = "https://storage.googleapis.com/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/abc.jsonl"
BODY = b'{"id":"gid://shopify/Order/1"}\n{"id":"gid://shopify/LineItem/2","__parentId":"gid://shopify/Order/1"}\n'


@responses.activate
def test_result_is_streamed_to_the_file(tmp_path):
    responses.get(URL, body=BODY)
    path = tmp_path / "out.jsonl"
    assert download_result(URL, path, expected_bytes=len(BODY), chunk_bytes=8) == len(BODY)
    assert path.read_bytes() == BODY
    assert not (tmp_path / "out.jsonl.part").exists()


@responses.activate
def test_short_download_and_server_errors_are_retried(tmp_path):
    responses.get(URL, status=503)
    responses.get(URL, body=BODY[:10])
    responses.get(URL, body=BODY)
    path = tmp_path / "out.jsonl"
    download_result(URL, path, expected_bytes=len(BODY), sleep=lambda s: None)
    assert path.read_bytes() == BODY
    assert len(responses.calls) == 3


@responses.activate
def test_dropped_connections_give_up_with_a_transient_error(tmp_path):
    responses.get(URL, body=requests.ConnectionError("reset"))
    with pytest.raises(TransientSourceError, match="ConnectionError"):
        download_result(URL, tmp_path / "x.jsonl", attempts=2, sleep=lambda s: None)


@responses.activate
def test_expired_link_is_a_permanent_error(tmp_path):
    responses.get(URL, status=403)
    with pytest.raises(PermanentSourceError):
        download_result(URL, tmp_path / "x.jsonl", sleep=lambda s: None)
