"""Signal-to-noise ratios: linear P_signal / P_noise; "orig" (no noise) is +inf.

Representing the clean data as SNR = inf keeps every SNR a float: the noise variance
P_signal / SNR is then exactly 0, and "orig" sorts above every finite SNR.
"""

from __future__ import annotations

import math

ORIG = math.inf


def parse_snr(value: object) -> float:
    """Parse an SNR from a number or the string "orig"/"inf"; reject <= 0 and NaN."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("orig", "inf", "clean", "none"):
            return ORIG
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"SNR {value!r} is not a number or 'orig'") from None
    if value is None:
        return ORIG
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"SNR {value!r} must be a number or 'orig'")
    snr = float(value)
    if math.isnan(snr) or snr <= 0:
        raise ValueError(f"SNR must be > 0 (linear P_signal/P_noise) or 'orig', got {value!r}")
    return snr


def format_snr(snr: float) -> str:
    """'orig' for the clean data, else the shortest exact decimal (0.25, 2, 0.0625)."""
    return "orig" if math.isinf(snr) else f"{snr:g}"
