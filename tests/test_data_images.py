"""images: download from a local HTTP server on 127.0.0.1 (retries, 404, resume, report)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from harness.cli import main as cli_main
from protocol.data.build import build_dataset
from protocol.data.dataset import Dataset
from protocol.data.images import REPORT_CSV, REPORT_JSON, FetchSettings, download_images, local_images
from protocol.data.spec import DatasetSpec
from protocol.errors import HarnessError

BODIES = {"/a.jpg": b"\xff\xd8jpeg-a", "/b": b"\x89PNGpng-b", "/flaky.jpg": b"\xff\xd8jpeg-d"}
FAST = FetchSettings(retries=2, timeout=5.0, backoff=0.01)


class Handler(BaseHTTPRequestHandler):
    """/a.jpg and /b (no suffix, PNG) serve images; /flaky.jpg fails once with 503 first;
    /page.jpg serves HTML; anything else is 404. Every request is counted per path."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        hits = self.server.hits
        hits[self.path] = hits.get(self.path, 0) + 1
        if self.path == "/flaky.jpg" and hits[self.path] == 1:
            return self.send_error(503)
        if self.path == "/page.jpg":
            return self._send(b"<html>sorry</html>", "text/html")
        if self.path not in BODIES:
            return self.send_error(404)
        self._send(BODIES[self.path], "image/png" if self.path == "/b" else "image/jpeg")

    def _send(self, body: bytes, content_type: str):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # loopback only
    httpd.hits = {}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def tiny_dataset(folder, urls: list[str]) -> Dataset:
    """Three users who each bought all items, whose image column holds `urls`."""
    n = len(urls)
    inter = pd.DataFrame({"user": [u for u in ("u1", "u2", "u3") for _ in range(n)],
                          "item": [f"i{k}" for _ in range(3) for k in range(n)],
                          "time": list(range(n)) * 3})
    items = pd.DataFrame({"raw_id": [f"i{k}" for k in range(n)], "title": "t", "image": urls})
    spec = DatasetSpec(name="tiny", n_negatives=0, negative_seed=0)
    build_dataset(folder, inter, items, spec, {}, "items")
    return Dataset(folder)


def test_download_retry_404_report_and_resume(server, tmp_path):
    base = f"http://127.0.0.1:{server.server_port}"
    urls = [f"{base}/a.jpg", f"{base}/b", f"{base}/missing.jpg", f"{base}/flaky.jpg", "", f"{base}/page.jpg"]
    ds = tiny_dataset(tmp_path / "ds", urls)
    (ds.path / "images").mkdir()
    (ds.path / "images" / ".000000.jpg.x.tmp").write_bytes(b"left by a killed run")

    before = ds.images_fingerprint()
    counts = download_images(ds, workers=3, settings=FAST, progress=False)
    assert counts == {"items": 6, "with_url": 5, "already_present": 0, "downloaded": 3, "failed": 2,
                      "no_url": 1, "present": 3, "missing": 3}
    assert local_images(ds.path) == {0: "images/000000.jpg", 1: "images/000001.png",
                                     3: "images/000003.jpg"}
    assert (ds.path / "images" / "000000.jpg").read_bytes() == BODIES["/a.jpg"]
    assert (ds.path / "images" / "000001.png").read_bytes() == BODIES["/b"]  # type from Content-Type
    assert (ds.path / "images" / "000003.jpg").read_bytes() == BODIES["/flaky.jpg"]
    assert server.hits == {"/a.jpg": 1, "/b": 1, "/missing.jpg": 1, "/flaky.jpg": 2, "/page.jpg": 1}

    report = pd.read_csv(ds.path / REPORT_CSV, keep_default_na=False)
    assert report[["index", "status", "attempts"]].values.tolist() == [
        [2, "failed", 1], [4, "no_url", 0], [5, "failed", 1]]
    assert "HTTP 404" in report.loc[0, "error"] and "not an image (text/html)" in report.loc[2, "error"]
    assert json.loads((ds.path / REPORT_JSON).read_text())["counts"] == counts
    assert Dataset(ds.path).content_hash == ds.content_hash  # the data set itself is untouched

    # The extractors read the fetched files; the images fingerprint (in feature keys) moved.
    fresh = Dataset(ds.path)
    assert fresh.image_files[:2] == ["images/000000.jpg", "images/000001.png"]
    assert fresh.image_files[2] == urls[2] and fresh.image_files[4] == ""
    assert fresh.images_fingerprint() != before

    # Resume: nothing new is fetched; the failed ones are tried again and fail again.
    again = download_images(ds, workers=2, settings=FAST, progress=False)
    assert again["downloaded"] == 0 and again["already_present"] == 3 and again["failed"] == 2
    assert server.hits == {"/a.jpg": 1, "/b": 1, "/missing.jpg": 2, "/flaky.jpg": 2, "/page.jpg": 2}


def test_transient_failures_give_up_after_the_retries(server, tmp_path):
    ds = tiny_dataset(tmp_path / "ds", [f"http://127.0.0.1:{server.server_port}/flaky.jpg"])
    counts = download_images(ds, workers=1, settings=FetchSettings(retries=0, backoff=0.01), progress=False)
    assert counts["failed"] == 1 and counts["downloaded"] == 0
    report = pd.read_csv(ds.path / REPORT_CSV)
    assert report.loc[0, "attempts"] == 1 and "503" in report.loc[0, "error"]


def test_unreachable_host_is_retried_then_reported(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ds = tiny_dataset(tmp_path / "ds", [f"http://127.0.0.1:{port}/x.jpg"])
    counts = download_images(ds, workers=1, settings=FAST, progress=False)
    assert counts["failed"] == 1
    report = pd.read_csv(ds.path / REPORT_CSV)
    assert report.loc[0, "attempts"] == 3 and "URLError" in report.loc[0, "error"]


def test_no_urls_is_a_clear_error(tmp_path):
    ds = tiny_dataset(tmp_path / "ds", ["", ""])
    with pytest.raises(HarnessError, match="no item of tiny has an image URL"):
        download_images(ds, progress=False)
    with pytest.raises(HarnessError, match="workers >= 1"):
        download_images(ds, workers=0, progress=False)


def test_images_cli(server, tmp_path, capsys):
    ds = tiny_dataset(tmp_path / "ds", [f"http://127.0.0.1:{server.server_port}/a.jpg", ""])
    assert cli_main(["data", "images", "--dataset", str(ds.path), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 downloaded, 0 already there, 0 failed, 1 without URL; 1 of 2 items have an image" in out
    assert REPORT_CSV in out
