"""Streaming the bulk-operation result to disk, against a local HTTP server that answers
each request as scripted (a status, a body, a short body, a dropped connection)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vipsync.connectors.shopify.bulk import download_result
from vipsync.errors import PermanentSourceError, TransientSourceError

BODY = b'{"id":"gid://shopify/Order/1"}\n{"id":"gid://shopify/LineItem/2","__parentId":"gid://shopify/Order/1"}\n'


class _Server:
    """Answers the n-th GET with the n-th scripted answer (the last one repeats):
    ``200`` and a body, another status, ``"drop"`` (the connection closed before any
    answer) or ``"cut"`` (a body shorter than its Content-Length, then closed)."""

    def __init__(self) -> None:
        self.script: list[tuple[str | int, bytes]] = []
        self.calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body = server.script[min(server.calls, len(server.script) - 1)]
                server.calls += 1
                if kind == "drop":
                    self.close_connection = True
                    return
                self.send_response(200 if kind == "cut" else int(kind))
                self.send_header("Content-Length", str(len(body) + (50 if kind == "cut" else 0)))
                self.end_headers()
                self.wfile.write(body)
                if kind == "cut":
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/bulk-operation-outputs/abc.jsonl"


@pytest.fixture
def server() -> Iterator[_Server]:
    fake = _Server()
    thread = threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_result_is_streamed_to_the_file(server, tmp_path):
    server.script = [(200, BODY)]
    path = tmp_path / "out.jsonl"
    assert download_result(server.url, path, expected_bytes=len(BODY), chunk_bytes=8) == len(BODY)
    assert path.read_bytes() == BODY
    assert not (tmp_path / "out.jsonl.part").exists()


def test_server_errors_short_and_cut_downloads_are_retried(server, tmp_path):
    server.script = [(503, b"busy"), (429, b""), (200, BODY[:10]), ("cut", BODY[:20]), (200, BODY)]
    path = tmp_path / "out.jsonl"
    download_result(server.url, path, expected_bytes=len(BODY), attempts=5, sleep=lambda s: None)
    assert path.read_bytes() == BODY
    assert server.calls == 5
    assert not (tmp_path / "out.jsonl.part").exists()


def test_dropped_connections_give_up_with_a_transient_error(server, tmp_path):
    server.script = [("drop", b"")]
    with pytest.raises(TransientSourceError, match="after 2 attempts"):
        download_result(server.url, tmp_path / "x.jsonl", attempts=2, sleep=lambda s: None)
    assert server.calls == 2
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.part").exists()


def test_the_last_failure_is_named(server, tmp_path):
    server.script = [(502, b"")]
    with pytest.raises(TransientSourceError, match="HTTP 502 after 3 attempts"):
        download_result(server.url, tmp_path / "x.jsonl", attempts=3, sleep=lambda s: None)


def test_expired_link_is_a_permanent_error(server, tmp_path):
    server.script = [(403, b"expired")]
    with pytest.raises(PermanentSourceError, match="HTTP 403"):
        download_result(server.url, tmp_path / "x.jsonl", sleep=lambda s: None)
    assert server.calls == 1
