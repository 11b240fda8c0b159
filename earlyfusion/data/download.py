"""Atomic, checksummed downloads into the cache.

A download goes to a temporary file in the destination folder and is renamed into place
only after its checksum matched, so an interrupted or corrupt download never leaves a
file that looks whole (issue 2: "no half-written file is left in a cache").
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from earlyfusion.atomic import atomic_path

CHUNK = 1 << 20


def user_cache_dir() -> Path:
    """The download cache: $XDG_CACHE_HOME/earlyfusion, else ~/.cache/earlyfusion."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "earlyfusion"


def fetch(url: str, dest: Path, md5: str | None = None, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; verify its md5 when given.

    Raises ValueError on a checksum mismatch and OSError when the server cannot be
    reached; in both cases nothing is left at ``dest`` or beside it.
    """
    try:
        with atomic_path(dest) as tmp:
            digest = hashlib.md5()
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            if md5 is not None and digest.hexdigest() != md5:
                raise ValueError(f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}")
    except urllib.error.URLError as exc:
        raise OSError(f"could not download {url}: {exc.reason}") from exc
    return Path(dest)


def replace_dir(src: Path, dest: Path) -> None:
    """Move a fully written folder ``src`` into place at ``dest`` (replacing none)."""
    if dest.exists():
        shutil.rmtree(src, ignore_errors=True)
        return
    os.replace(src, dest)
