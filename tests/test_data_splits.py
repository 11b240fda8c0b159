"""8:1:1 splits, the manifest, and the pair space (paper A.3 pair counts)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from earlyfusion.data.pairs import PairSpace, distinct_uniform
from earlyfusion.data.splits import (SPLITS, build_manifest, load_manifest, manifest_hash, save_manifest,
                                     split_indices, split_sizes)

# Canonical MNIST train + test class counts (70,000) and FSDD v1.0.9 (250 per digit).
MNIST_COUNTS = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]
PAPER_PAIRS = {"train": 11_202_076, "val": 174_490, "test": 175_389}


def _space(img_labels, aud_labels, img_split, aud_split) -> PairSpace:
    return PairSpace(torch.from_numpy(img_split), torch.from_numpy(img_labels[img_split]),
                     torch.from_numpy(aud_split), torch.from_numpy(aud_labels[aud_split]))


def test_split_sizes_8_1_1():
    assert split_sizes(70_000) == {"train": 56_000, "test": 7_000, "val": 7_000}
    assert split_sizes(2_500) == {"train": 2_000, "test": 250, "val": 250}
    assert split_sizes(61) == {"train": 49, "test": 6, "val": 6}


@pytest.mark.parametrize("stratified", [False, True])
def test_split_partitions_and_is_seeded(stratified):
    labels = np.arange(1000) % 10
    parts = split_indices(labels, 3, "mnist", stratified)
    joined = np.concatenate([parts[s] for s in SPLITS])
    assert sorted(joined.tolist()) == list(range(1000))
    assert [len(parts[s]) for s in ("train", "test", "val")] == [800, 100, 100]
    again = split_indices(labels, 3, "mnist", stratified)
    assert all(np.array_equal(parts[s], again[s]) for s in SPLITS)
    assert not np.array_equal(parts["test"], split_indices(labels, 4, "mnist", stratified)["test"])
    if stratified:
        assert np.bincount(labels[parts["test"]]).tolist() == [10] * 10


def test_datasets_get_independent_permutations():
    labels = np.zeros(100, dtype=np.int64)
    assert not np.array_equal(split_indices(labels, 0, "mnist")["test"], split_indices(labels, 0, "fsdd")["test"])


def test_expected_pair_counts_match_the_paper():
    # From label counts alone: a random split puts each item in train with probability
    # 0.8, independently for the two datasets, so E[pairs] = sum_c (0.8 N_c)(0.8 M_c).
    n_img, n_aud = sum(MNIST_COUNTS), 2500
    for split in SPLITS:
        fi, fa = split_sizes(n_img)[split] / n_img, split_sizes(n_aud)[split] / n_aud
        expected = sum(fi * c * fa * 250 for c in MNIST_COUNTS)
        assert abs(expected / PAPER_PAIRS[split] - 1) < 0.01, split


@pytest.mark.parametrize("stratified", [False, True])
def test_split_pair_counts_match_the_paper(stratified):
    img = np.repeat(np.arange(10), MNIST_COUNTS)
    aud = np.repeat(np.arange(10), 250)
    errors = {s: [] for s in SPLITS}
    for seed in range(8):
        si, sa = split_indices(img, seed, "mnist", stratified), split_indices(aud, seed, "fsdd", stratified)
        for split in SPLITS:
            errors[split].append(len(_space(img, aud, si[split], sa[split])) / PAPER_PAIRS[split] - 1)
    for split, errs in errors.items():
        errs = np.array(errs)
        assert abs(errs.mean()) < 0.01, split
        # one random draw of val/test pairs scatters by ~0.5% (the paper's own counts are one)
        assert np.abs(errs).max() < (0.01 if stratified or split == "train" else 0.02), split


def test_pair_space_enumerates_every_same_label_pair_once():
    img_labels = torch.tensor([0, 1, 1, 2, 0, 1, 3])
    aud_labels = torch.tensor([1, 0, 1, 1, 2, 0])
    img_idx, aud_idx = torch.tensor([0, 2, 3, 5, 6]), torch.tensor([0, 1, 3, 4])
    space = PairSpace(img_idx, img_labels[img_idx], aud_idx, aud_labels[aud_idx])
    brute = {(i, a) for i, a in itertools.product(img_idx.tolist(), aud_idx.tolist()) if img_labels[i] == aud_labels[a]}
    image, audio = space.lookup(torch.arange(len(space)))
    assert len(space) == len(brute) == 6
    assert set(zip(image.tolist(), audio.tolist())) == brute
    with pytest.raises(IndexError):
        space.lookup(torch.tensor([len(space)]))


@pytest.mark.parametrize("total, n", [(10_000_000, 5_000), (40, 30)])
def test_distinct_uniform_gives_distinct_in_range(total, n):
    g = torch.Generator().manual_seed(0)
    draw = distinct_uniform(total, n, g)
    assert len(draw) == n and len(draw.unique()) == n and 0 <= draw.min() and draw.max() < total
    assert torch.equal(draw, distinct_uniform(total, n, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="cannot draw"):
        distinct_uniform(total, total + 1, g)


def test_sampling_is_uniform_over_pairs():
    # rejection path (4 n <= total): every pair should come up equally often
    g = torch.Generator().manual_seed(1)
    total, n, rounds = 200, 20, 3000
    hits = torch.zeros(total)
    for _ in range(rounds):
        hits[distinct_uniform(total, n, g)] += 1
    expected = rounds * n / total
    chi2 = ((hits - expected) ** 2 / expected).sum().item()
    assert chi2 < total + 5 * (2 * total) ** 0.5  # chi-square with 199 dof, far tail


def test_sample_returns_same_label_pairs():
    labels_img = torch.arange(500) % 10
    labels_aud = torch.arange(100) % 10
    space = PairSpace(torch.arange(500), labels_img, torch.arange(100), labels_aud)
    image, audio = space.sample(1000, torch.Generator().manual_seed(0))
    assert image.dtype == torch.int64 and torch.equal(labels_img[image], labels_aud[audio])
    assert len(set(zip(image.tolist(), audio.tolist()))) == 1000


def test_manifest_hash_and_roundtrip(tmp_path):
    labels = np.arange(50) % 10
    s0, s1 = split_indices(labels, 0, "mnist"), split_indices(labels, 1, "mnist")
    m0 = build_manifest({"split_seed": 0}, ["a"], s0, ["x.wav"] * 50, s0)
    m1 = build_manifest({"split_seed": 1}, ["a"], s1, ["x.wav"] * 50, s1)
    assert manifest_hash(m0) == manifest_hash(build_manifest({"split_seed": 0}, ["a"], s0, ["x.wav"] * 50, s0))
    assert manifest_hash(m0) != manifest_hash(m1)
    path = save_manifest(m0, tmp_path / "runs" / "manifest.json")
    assert load_manifest(path) == m0 and manifest_hash(load_manifest(path)) == manifest_hash(m0)
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temporary left
