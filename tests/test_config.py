import math

import pytest
import yaml

from earlyfusion.config import Config, build_config, config_from_dict, load_config, save_config
from earlyfusion.snr import format_snr, parse_snr


def test_defaults_follow_the_paper():
    cfg = Config()
    assert (cfg.model.hidden, cfg.model.kernel, cfg.model.dense) == (64, 3, 128)
    assert cfg.train.lr == 1e-3 and cfg.train.pairs == 87_516
    assert len(cfg.eval.audio_snrs) == len(cfg.eval.visual_snrs) == 10
    assert math.isinf(cfg.eval.audio_snrs[0])


def test_overrides_are_typed():
    cfg = build_config(overrides=["train.pairs=3000", "train.audio_snr=orig", "model.fusion=2", "eval.audio_snrs=[orig, 0.5]"])
    assert cfg.train.pairs == 3000
    assert math.isinf(cfg.train.audio_snr)
    assert cfg.model.fusion == "2"
    assert cfg.eval.audio_snrs == [math.inf, 0.5]
    assert build_config(overrides=["train.lr=1"]).train.lr == 1.0  # int widens to float


@pytest.mark.parametrize("override, message", [
    ("train.pair=3", "unknown config key 'train.pair'"),
    ("nosection.x=1", "unknown config key 'nosection'"),
    ("train.pairs=3.5", "expected int"),
    ("train.pairs=true", "expected int"),
    ("data.stratified=3", "expected bool"),
    ("train.audio_snr=0", "SNR must be > 0"),
    ("train.audio_snr=-2", "SNR must be > 0"),
    ("train.audio_snr=.nan", "SNR must be > 0"),
    ("train=3", "expected a mapping"),
    ("novalue", "section.key=value"),
])
def test_bad_config_is_an_error(override, message):
    with pytest.raises(ValueError, match=message):
        build_config(overrides=[override])


def test_yaml_round_trip(tmp_path):
    cfg = build_config(overrides=["train.visual_snr=orig", "data.audio_samples=8000"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["train"]["visual_snr"] == "orig"
    assert config_from_dict(cfg.to_dict()) == cfg


def test_yaml_unknown_key_is_an_error(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  hiden: 8\n")
    with pytest.raises(ValueError, match="model.hiden"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("text, value", [("orig", math.inf), ("0.25", 0.25), (2, 2.0), (None, math.inf)])
def test_parse_snr(text, value):
    assert parse_snr(text) == value


def test_format_snr_round_trips():
    for snr in [math.inf, 8, 0.5, 0.03125]:
        assert parse_snr(format_snr(snr)) == snr
