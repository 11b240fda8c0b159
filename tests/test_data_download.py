"""Downloads over a real HTTP server on 127.0.0.1: atomic, checksummed, nothing half-written."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from earlyfusion.config import DataConfig
from earlyfusion.data import AudioVisualData, mnist
from earlyfusion.data.download import fetch
from earlyfusion.data.fsdd import download_fsdd, load_fsdd


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def data_http(tmp_path, monkeypatch):
    """(folder served, base URL) of an HTTP server on 127.0.0.1."""
    for name in ("no_proxy", "NO_PROXY"):  # a proxy set for pip must not catch 127.0.0.1
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _serve_mnist(served: Path, write_idx, shared: Path | None = None) -> dict[str, str]:
    """Serve train (small, synthetic) and t10k (shared copies when given); return their md5s."""
    folder = served / "mnist"
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        if shared is not None:
            shutil.copy(shared / "mnist" / f"{stem}.gz", folder / f"{stem}.gz")
        else:
            write_idx(folder / f"{stem}.gz", rng.integers(0, 256, (10, 28, 28)) if "images" in stem else np.arange(10))
    return {p.name[:-3]: _md5(p) for p in folder.iterdir()}


def _serve_fsdd(served: Path, write_wav, tmp: Path) -> Path:
    """A tag-style archive: free-spoken-digit-dataset-1.0.10/{README.md, recordings/*.wav}."""
    wavs = [write_wav(tmp / f"{d}_{s}_0.wav", np.full(500 + d, 1000 * (d + 1), np.int16))
            for d in range(10) for s in ("george", "lucas")]
    archive = served / "v1.0.10.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("free-spoken-digit-dataset-1.0.10/README.md"), io.BytesIO())
        for wav in wavs:
            tar.add(wav, arcname=f"free-spoken-digit-dataset-1.0.10/recordings/{wav.name}")
    return archive


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]


def test_fetch_is_atomic_and_checked(data_http, tmp_path):
    served, url = data_http
    (served / "blob").write_bytes(b"x" * 5000)
    dest = tmp_path / "cache" / "blob"
    assert fetch(f"{url}/blob", dest, md5=hashlib.md5(b"x" * 5000).hexdigest()).read_bytes() == b"x" * 5000
    with pytest.raises(ValueError, match="checksum mismatch .*expected 0+"):
        fetch(f"{url}/blob", tmp_path / "cache" / "other", md5="0" * 32)
    with pytest.raises(OSError, match="could not download .*missing"):
        fetch(f"{url}/missing", tmp_path / "cache" / "missing")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["blob"]


def test_mnist_checksum_mismatch_leaves_nothing(data_http, data_write_idx, tmp_path):
    served, url = data_http
    _serve_mnist(served, data_write_idx)  # synthetic files: not the canonical md5s
    cache = tmp_path / "cache" / "mnist"
    with pytest.raises(ValueError, match="checksum mismatch .*train-images-idx3-ubyte.gz"):
        mnist.download_mnist(cache, f"{url}/mnist")
    assert list(cache.iterdir()) == []


def test_mnist_download_of_real_files(data_http, data_write_idx, data_shared_root, tmp_path, monkeypatch):
    served, url = data_http
    md5s = _serve_mnist(served, data_write_idx, shared=data_shared_root)
    monkeypatch.setattr(mnist, "GZ_MD5", md5s)  # the shared t10k copies were recompressed
    cache = tmp_path / "cache" / "mnist"
    mnist.download_mnist(cache, f"{url}/mnist")
    images, labels, _ = mnist.load_mnist(cache)  # t10k content is held to its canonical md5
    assert images.shape == (10_020, 28, 28) and labels[:20].tolist() == list(range(10)) * 2
    assert _leftovers(cache) == []


def test_fsdd_download_extracts_recordings_only(data_http, data_write_wav, tmp_path):
    served, url = data_http
    _serve_fsdd(served, data_write_wav, tmp_path / "wavs")
    root = tmp_path / "cache" / "fsdd"
    target = download_fsdd(root, f"{url}/v1.0.10.tar.gz")
    assert target == root / "recordings" and len(list(target.iterdir())) == 20
    rec = load_fsdd(target, "v1.0.9")
    assert len(rec.names) == 10 and rec.waves[3][0] == pytest.approx(4000 / 32768)
    assert _leftovers(root) == [] and sorted(p.name for p in root.iterdir()) == ["recordings"]
    (served / "v1.0.10.tar.gz").unlink()
    assert download_fsdd(root, f"{url}/v1.0.10.tar.gz") == target  # present: no second download


def test_fsdd_bad_archive_leaves_nothing(data_http, tmp_path):
    served, url = data_http
    (served / "bad.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    root = tmp_path / "cache" / "fsdd"
    with pytest.raises(ValueError, match="corrupt FSDD archive"):
        download_fsdd(root, f"{url}/bad.tar.gz")
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_fsdd(root, f"{url}/bad.tar.gz", md5="0" * 32)
    assert list(root.iterdir()) == []


def test_default_root_is_filled_by_download(data_http, data_write_idx, data_write_wav, tmp_path, monkeypatch):
    served, url = data_http
    md5s = _serve_mnist(served, data_write_idx)
    _serve_fsdd(served, data_write_wav, tmp_path / "wavs")
    monkeypatch.setattr(mnist, "GZ_MD5", md5s)
    monkeypatch.delenv("EARLYFUSION_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EARLYFUSION_MNIST_URL", f"{url}/mnist")
    monkeypatch.setenv("EARLYFUSION_FSDD_URL", f"{url}/v1.0.10.tar.gz")
    data = AudioVisualData.load(DataConfig(fsdd_version="v1.0.10"))
    assert data.root == tmp_path / "xdg" / "earlyfusion" / "data"
    assert len(data.images) == 30 and len(data.audio_names) == 20 and data.audio_samples == 509
