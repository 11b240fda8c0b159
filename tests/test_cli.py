"""The command line: bad input ends with a one-line error and exit status 2, not a traceback."""

import pytest

from earlyfusion.cli import build_parser, main


@pytest.mark.parametrize("argv, message", [
    (["train", "--run-dir", "{tmp}/r", "--set", "train.pair=3"], "unknown config key 'train.pair'"),
    (["train", "--run-dir", "{tmp}/r", "--set", "train.audio_snr=0"], "SNR must be > 0"),
    (["train", "--run-dir", "{tmp}/r", "--threads", "0"], "threads must be >= 1"),
    (["evaluate", "{tmp}/missing.pt", "--out", "{tmp}/e.csv"], "does not exist"),
    (["reproduce", "--profile", "nosuchprofile", "--out", "{tmp}"], "built-in profiles"),
    (["reproduce", "--only", "fusoin", "--out", "{tmp}"], "--only"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("earlyfusion: error:") and message in err
    assert "Traceback" not in err


def test_every_command_is_wired():
    parser = build_parser()
    for argv in (["data", "info"], ["data", "show"], ["train", "--run-dir", "x"], ["evaluate", "c.pt", "--out", "o"],
                 ["reproduce"], ["bench"]):
        assert callable(parser.parse_args(argv).func)
