"""MNIST IDX reading: good files (gz and raw), and every kind of bad file gets a clear error."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from earlyfusion.data.mnist import IMAGE_MAGIC, LABEL_MAGIC, load_mnist, read_idx


def _pair(folder, write, n=5, part="t10k", compress=True, labels=None):
    images = np.arange(n * 784, dtype=np.int64).reshape(n, 28, 28) % 256
    labels = np.arange(n) % 10 if labels is None else labels
    suffix = ".gz" if compress else ""
    write(folder / f"{part}-images-idx3-ubyte{suffix}", images, compress=compress)
    write(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, compress=compress)
    return images.astype(np.uint8), labels


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gz_and_raw(tmp_path, data_write_idx, compress):
    images, labels = _pair(tmp_path, data_write_idx, compress=compress)
    got_images, got_labels, files = load_mnist(tmp_path)
    assert got_images.shape == (5, 28, 28) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64 and len(files) == 2


def test_pools_train_before_t10k(tmp_path, data_write_idx):
    _pair(tmp_path, data_write_idx, n=3, part="t10k", labels=np.array([7, 7, 7]))
    _pair(tmp_path, data_write_idx, n=4, part="train", labels=np.array([1, 1, 1, 1]))
    _, labels, files = load_mnist(tmp_path)
    assert labels.tolist() == [1, 1, 1, 1, 7, 7, 7]
    assert files[0].startswith("train-") and files[2].startswith("t10k-")


def test_missing_folder_and_files(tmp_path, data_write_idx):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no MNIST files"):
        load_mnist(tmp_path)
    data_write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_truncated_gz(tmp_path, data_write_idx):
    path = data_write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"x\.gz: truncated or corrupt gzip"):
        read_idx(path, IMAGE_MAGIC, (28, 28))


def test_corrupt_gz(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        read_idx(path, IMAGE_MAGIC, (28, 28))


def test_wrong_magic(tmp_path, data_write_idx):
    path = data_write_idx(tmp_path / "x.gz", np.zeros((2, 28, 28)), magic=0x0801)
    with pytest.raises(ValueError, match="IDX magic 0x00000801, expected 0x00000803"):
        read_idx(path, IMAGE_MAGIC, (28, 28))


def test_wrong_shape(tmp_path, data_write_idx):
    path = data_write_idx(tmp_path / "x.gz", np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match=r"item shape \(32, 32\), expected \(28, 28\)"):
        read_idx(path, IMAGE_MAGIC, (28, 28))


def test_size_disagrees_with_header(tmp_path, data_write_idx):
    path = data_write_idx(tmp_path / "x", np.zeros((3, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="data bytes, expected 2352"):
        read_idx(path, IMAGE_MAGIC, (28, 28))


def test_label_outside_0_9(tmp_path, data_write_idx):
    _pair(tmp_path, data_write_idx, n=3, labels=np.array([1, 12, 3]))
    with pytest.raises(ValueError, match="label 12 outside 0-9"):
        load_mnist(tmp_path)


def test_label_count_must_match(tmp_path, data_write_idx):
    data_write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    data_write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(ValueError, match="4 labels, expected 3"):
        load_mnist(tmp_path)


def test_canonical_count_is_held_to_its_md5(tmp_path, data_write_idx):
    # 10,000 images named t10k claim to be the canonical test set, so their md5 is checked.
    data_write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 28, 28)))
    data_write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10_000))
    with pytest.raises(ValueError, match="content md5 .* expected 2646ac64"):
        load_mnist(tmp_path)


def test_real_t10k(data_shared_root):
    images, labels, _ = load_mnist(data_shared_root / "mnist")
    assert images.shape == (10_000, 28, 28)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw = gzip.decompress((data_shared_root / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert read_idx(data_shared_root / "mnist" / "t10k-labels-idx1-ubyte.gz", LABEL_MAGIC, ())[0].size == len(raw) - 8
