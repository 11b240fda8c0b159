"""Every same-label (image, audio) pair of one split, by index arithmetic (paper A.3).

Pair p of class c (offset q = p - start_c) is image ``I_c[q // |A_c|]`` with audio
``A_c[q % |A_c|]``: the 11.2 M training pairs are never materialised.
"""

from __future__ import annotations

import torch


class PairSpace:
    """Same-label pairs of one split; items are global image / audio indices."""

    def __init__(self, image_idx: torch.Tensor, image_labels: torch.Tensor,
                 audio_idx: torch.Tensor, audio_labels: torch.Tensor, classes: int = 10):
        self._images = [image_idx[image_labels == c] for c in range(classes)]
        self._audios = [audio_idx[audio_labels == c] for c in range(classes)]
        counts = torch.tensor([len(i) * len(a) for i, a in zip(self._images, self._audios)], dtype=torch.int64)
        self.class_counts = counts  # (10,) pairs per class
        self._ends = torch.cumsum(counts, 0)  # (10,) exclusive end of each class's block

    def __len__(self) -> int:
        return int(self._ends[-1])

    def lookup(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair numbers (n,) in [0, len) -> (image_idx (n,), audio_idx (n,))."""
        pair = torch.as_tensor(pair, dtype=torch.int64)
        if pair.numel() and (pair.min() < 0 or pair.max() >= len(self)):
            raise IndexError(f"pair numbers must lie in [0, {len(self)})")
        cls = torch.searchsorted(self._ends, pair, right=True)
        image, audio = torch.empty_like(pair), torch.empty_like(pair)
        for c in cls.unique().tolist():
            sel = cls == c
            offset = pair[sel] - (self._ends[c] - self.class_counts[c])
            n_audio = len(self._audios[c])
            image[sel] = self._images[c][offset // n_audio]
            audio[sel] = self._audios[c][offset % n_audio]
        return image, audio

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n distinct pairs, uniform over the split's pairs, in random order."""
        return self.lookup(distinct_uniform(len(self), n, generator))


def distinct_uniform(total: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n distinct integers from [0, total), each n-subset and order equally likely.

    Rejection sampling (draw, drop repeats, draw the shortfall) needs memory O(n), not
    O(total); a small space (n > total / 4) is cheaper to permute whole.
    """
    if not 0 <= n <= total:
        raise ValueError(f"cannot draw {n} distinct pairs from a space of {total}")
    if 4 * n > total:
        return torch.randperm(total, generator=generator)[:n]
    chosen = torch.empty(0, dtype=torch.int64)
    while len(chosen) < n:
        draw = torch.randint(total, (int((n - len(chosen)) * 1.1) + 8,), generator=generator)
        merged = torch.cat([chosen, draw])
        uniq, inverse = torch.unique(merged, return_inverse=True)
        # keep the first occurrence of each value, in draw order
        first = torch.full((len(uniq),), len(merged), dtype=torch.int64)
        first.scatter_reduce_(0, inverse, torch.arange(len(merged)), reduce="amin")
        chosen = merged[first.sort().values][:n]
    return chosen[torch.randperm(n, generator=generator)]
