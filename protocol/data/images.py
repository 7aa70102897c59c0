"""Download item images from their URLs (items.csv `image`, from the meta files' imUrl).

Files go to <dataset>/images/<index, 6 digits>.<ext>, the names the rendered mini images use, and
are written atomically: an interrupted run leaves only whole files, and the next run resumes by
skipping every item that already has one. A failure that may pass (connection error, timeout,
HTTP 408/429/5xx) is retried with exponential back-off; any other (404, not an image) fails at
once. Items without a URL stay missing. items.csv is left as it is (it is part of the data set's
content hash); `local_images` tells which items have a file.

Report, in the dataset folder: images_report.csv (each item still without an image: its URL,
status failed or no_url, attempts, error) and images_report.json (counts and settings).
"""
from __future__ import annotations

import http.client
import mimetypes
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlparse

import pandas as pd
from tqdm import tqdm

from protocol.errors import HarnessError
from protocol.fileio import atomic_path, write_json

IMAGE_DIR = "images"
REPORT_CSV, REPORT_JSON = "images_report.csv", "images_report.json"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
USER_AGENT = "sda-harness image fetcher (research benchmark)"


@dataclass(frozen=True)
class FetchSettings:
    retries: int = 3  # extra tries after a failure that may pass
    timeout: float = 20.0  # seconds per request
    backoff: float = 1.0  # seconds before the first retry; doubles each time


@dataclass
class Outcome:
    index: int
    url: str
    status: str  # downloaded | failed | no_url
    attempts: int = 0
    error: str = ""


class _Permanent(Exception):
    """A failure that another try would repeat (HTTP 404, not an image, a bad URL)."""


def local_images(folder: str | Path) -> dict[int, str]:
    """Item index -> path (relative to the dataset folder) of its image file in images/."""
    found = {}
    for path in (Path(folder) / IMAGE_DIR).glob("[0-9]*.*"):  # temp files start with "."
        if path.stem.isdigit():
            found[int(path.stem)] = f"{IMAGE_DIR}/{path.name}"
    return found


def _extension(url: str, content_type: str | None) -> str:
    suffix = Path(urlparse(url).path).suffix.lower()
    if suffix in EXTENSIONS:
        return suffix
    guessed = mimetypes.guess_extension(content_type.split(";")[0].strip()) if content_type else None
    return guessed if guessed in EXTENSIONS else ".jpg"


def _get(url: str, timeout: float) -> tuple[bytes, str | None]:
    """The body and Content-Type of `url`; _Permanent for failures a retry would not fix."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body, content_type = response.read(), response.headers.get("Content-Type")
    except HTTPError as err:
        if err.code in RETRY_STATUS:
            raise
        raise _Permanent(f"HTTP {err.code} {err.reason}") from None
    except ValueError as err:  # urllib's answer to a malformed URL
        raise _Permanent(f"bad URL ({err})") from None
    if content_type and not content_type.startswith("image/"):
        raise _Permanent(f"not an image ({content_type})")
    if not body:
        raise _Permanent("empty response")
    return body, content_type


def fetch_image(folder: Path, index: int, url: str, settings: FetchSettings) -> Outcome:
    """Download one image into `folder`/images with retries; never raises for network errors."""
    error = ""
    for attempt in range(1, settings.retries + 2):
        try:
            body, content_type = _get(url, settings.timeout)
        except _Permanent as err:
            return Outcome(index, url, "failed", attempt, str(err))
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets, 5xx
            error = f"{type(err).__name__}: {err}"
            if attempt <= settings.retries:
                time.sleep(settings.backoff * 2 ** (attempt - 1))
            continue
        with atomic_path(folder / IMAGE_DIR / f"{index:06d}{_extension(url, content_type)}") as tmp:
            tmp.write_bytes(body)
        return Outcome(index, url, "downloaded", attempt)
    return Outcome(index, url, "failed", settings.retries + 1, error)


def _run_pool(folder: Path, todo: list[tuple[int, str]], workers: int, settings: FetchSettings,
              progress: bool) -> list[Outcome]:
    outcomes = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fetch_image, folder, i, url, settings) for i, url in todo]
        with tqdm(total=len(todo), desc="images", unit="img", disable=not progress) as bar:
            for future in as_completed(futures):
                outcomes.append(future.result())
                bar.update()
    finally:
        # On Ctrl-C: drop what has not started; started downloads finish whole (atomic writes).
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def download_images(dataset, workers: int = 8, settings: FetchSettings = FetchSettings(),
                    progress: bool = True) -> dict:
    """Fetch the missing images of `dataset` (a Dataset) and write the report; returns the counts."""
    if workers < 1 or settings.retries < 0 or settings.timeout <= 0:
        raise HarnessError("images needs workers >= 1, retries >= 0 and timeout > 0; fix the options.")
    folder = Path(dataset.path)
    values = dict(zip(dataset.items["index"].astype(int), dataset.items["image"].astype(str)))
    urls = {i: v for i, v in values.items() if v.startswith(("http://", "https://"))}
    present = local_images(folder)
    if not urls and not present:
        raise HarnessError(f"no item of {dataset.name} has an image URL (items.csv column image); "
                           "prepare it from Amazon meta files with imUrl, or render images (images=render).")
    todo = [(i, url) for i, url in urls.items() if i not in present]
    began = time.perf_counter()
    outcomes = _run_pool(folder, todo, workers, settings, progress)
    seconds = time.perf_counter() - began

    now_present = local_images(folder)
    missing = [o for o in outcomes if o.status == "failed"]
    missing += [Outcome(i, v, "no_url") for i, v in values.items() if i not in urls and i not in now_present]
    missing.sort(key=lambda o: o.index)
    with atomic_path(folder / REPORT_CSV) as tmp:
        pd.DataFrame([asdict(o) for o in missing], columns=list(Outcome.__dataclass_fields__)).to_csv(
            tmp, index=False)
    counts = {
        "items": len(values), "with_url": len(urls), "already_present": sum(i in present for i in values),
        "downloaded": sum(o.status == "downloaded" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "no_url": sum(o.status == "no_url" for o in missing),
        "present": sum(i in now_present for i in values),
        "missing": sum(i not in now_present for i in values),
    }
    write_json(folder / REPORT_JSON, {"counts": counts, "seconds": round(seconds, 2),
                                      "workers": workers, **asdict(settings)})
    return counts
