"""Atomic writes and content hashes: nothing half-written is ever left under its final name.

A write goes to a temporary `.<name>.<random>.tmp` beside its target and is renamed onto it at
the end. The writer holds an advisory lock on its temporary while it works, so a temporary
nobody holds (its writer was killed) is stale, and the next write to the same target removes
it. Finished files get the permissions the umask gives (mkstemp alone would leave them 0600).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from protocol.errors import HarnessError

STALE_AFTER_SECONDS = 60  # an unlocked temporary younger than this may belong to a writer just starting


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _hold(path: Path) -> int:
    """An open descriptor of `path` holding its exclusive lock (released when closed or on exit)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of `path` whose writers died: unlocked and older than a minute."""
    removed = []
    for stale in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp"):
        try:
            fd = os.open(stale, os.O_RDONLY)
        except OSError:  # gone already, or unreadable: leave it
            continue
        try:
            if time.time() - os.fstat(fd).st_mtime < STALE_AFTER_SECONDS:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer holds it
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed.append(stale)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Build a directory under a temporary name and rename it into place on success.

    An existing directory at `path` is replaced only after the new one is complete; a file there
    is refused (it is not ours to replace, and it would become a folder).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{path} is a file, not a folder; move it away or choose another folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    fd = _hold(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def save_npy(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def file_sha256(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def combined_sha256(hashes) -> str:
    """One hash over several files' sha256 hex digests, in the given order."""
    digest = hashlib.sha256()
    for h in hashes:
        digest.update(h.encode())
    return digest.hexdigest()


def files_sha256(paths) -> str:
    """One hash over several files' contents, in the given order (names excluded)."""
    return combined_sha256(file_sha256(p) for p in paths)


def changed_files(folder: Path, recorded: dict[str, str]) -> list[str]:
    """The files of `folder` whose sha256 differs from `recorded` ({name: sha256}); a missing
    file counts as changed."""
    return [name for name, sha in recorded.items()
            if not (Path(folder) / name).is_file() or file_sha256(Path(folder) / name) != sha]


def unreadable(path, err: OSError) -> HarnessError:
    """The one-line error for a file or folder this process may not read."""
    return HarnessError(f"cannot read {path} ({err.strerror or err}); make it readable (chmod) or copy it "
                        "to a folder you can read.")


def check_output_file(path: Path, option: str, ours) -> None:
    """Refuse a user-given output file path that is a folder, or an existing file the harness
    did not write (`ours(path)` says whether it did): it is never overwritten."""
    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"{option} {path} is a folder; give a file path, e.g. {option} {path / 'out.csv'}.")
    if path.exists() and not ours(path):
        raise HarnessError(f"{option} {path} is a file the harness did not write; it is left as it is: "
                           "move it away or choose another path.")


def csv_starts_with(path: Path, columns) -> bool:
    """Whether the CSV at `path` begins with the header `columns`: how a CSV the harness wrote is
    told from a user's file of the same name."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n").startswith(",".join(columns))
    except OSError:  # unreadable: not known to be ours
        return False


def check_output_folder(path: Path, option: str) -> None:
    """Refuse a user-given output folder that is a file (or lies under one)."""
    for part in (Path(path), *Path(path).parents):
        if part.exists():
            if not part.is_dir():
                raise HarnessError(f"{option} {path}: {part} is a file, not a folder; give a folder path.")
            return


def stable_key(obj, length: int = 16) -> str:
    """A short content key for a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
