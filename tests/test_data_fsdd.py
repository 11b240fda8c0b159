"""FSDD WAV reading, speaker presets and clear errors for bad recordings."""

from __future__ import annotations

import numpy as np
import pytest

from earlyfusion.data.fsdd import load_fsdd, parse_name, read_wav


def test_read_wav_scales_to_unit_range(tmp_path, data_write_wav):
    samples = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    wave = read_wav(data_write_wav(tmp_path / "3_theo_0.wav", samples))
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave, [0, 0.5, -1, 32767 / 32768])


def test_parse_name():
    assert parse_name("7_yweweler_41.wav") == (7, "yweweler", 41)
    for bad in ("7-theo-1.wav", "theo_7_1.wav", "7_theo.wav", "7_theo_1.WAVE", "x_theo_1.wav"):
        with pytest.raises(ValueError, match="not of the form"):
            parse_name(bad)
    with pytest.raises(ValueError, match="label 12 outside 0-9"):
        parse_name("12_theo_1.wav")


def test_presets_and_order(data_root):
    rec9 = load_fsdd(data_root / "fsdd" / "recordings", "v1.0.9")
    rec10 = load_fsdd(data_root / "fsdd" / "recordings", "v1.0.10")
    assert "lucas" not in rec9.speakers and len(rec9.names) == 40
    assert "lucas" in rec10.speakers and len(rec10.names) == 60
    # fixed order: digit, then speaker, then index
    keys = [parse_name(n) for n in rec10.names]
    assert keys == sorted(keys)
    assert rec10.labels.tolist() == [k[0] for k in keys]
    with pytest.raises(ValueError, match="unknown FSDD version"):
        load_fsdd(data_root / "fsdd" / "recordings", "v2")


@pytest.mark.parametrize("problem, message", [
    ("rate", "sample rate 16000 Hz, expected 8000 Hz"),
    ("stereo", "2 channels, expected mono"),
    ("empty", "empty recording"),
    ("float", "expected 16-bit PCM"),
    ("garbage", "not a readable WAV file"),
])
def test_bad_wav(tmp_path, data_write_wav, problem, message):
    path = tmp_path / "1_theo_0.wav"
    mono = np.ones(100, dtype=np.int16)
    if problem == "rate":
        data_write_wav(path, mono, rate=16000)
    elif problem == "stereo":
        data_write_wav(path, np.ones((100, 2), dtype=np.int16))
    elif problem == "empty":
        data_write_wav(path, np.zeros(0, dtype=np.int16))
    elif problem == "float":
        data_write_wav(path, np.ones(100, dtype=np.float32))
    else:
        path.write_bytes(b"RIFF....not a wav at all")
    with pytest.raises(ValueError, match=message) as info:
        read_wav(path)
    assert "1_theo_0.wav" in str(info.value)


def test_bad_name_in_folder(tmp_path, data_write_wav):
    data_write_wav(tmp_path / "1_theo_0.wav", np.ones(10, dtype=np.int16))
    data_write_wav(tmp_path / "one_theo_0.wav", np.ones(10, dtype=np.int16))
    with pytest.raises(ValueError, match="one_theo_0.wav: file name"):
        load_fsdd(tmp_path, "v1.0.10")


def test_missing_folder_or_speakers(tmp_path, data_write_wav):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fsdd(tmp_path / "nope")
    data_write_wav(tmp_path / "1_lucas_0.wav", np.ones(10, dtype=np.int16))
    with pytest.raises(FileNotFoundError, match="no recordings of the v1.0.9 speakers"):
        load_fsdd(tmp_path, "v1.0.9")


def test_real_fsdd(data_shared_root):
    rec = load_fsdd(data_shared_root / "fsdd" / "recordings", "v1.0.9")
    assert len(rec.names) == 2500 and np.bincount(rec.labels).tolist() == [250] * 10
    lengths = [len(w) for w in rec.waves]
    assert max(lengths) == 18_262 and all(np.abs(w).max() <= 1 for w in rec.waves[:50])
    assert len(load_fsdd(data_shared_root / "fsdd" / "recordings", "v1.0.10").names) == 3000
