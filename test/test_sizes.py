"""WIDTHxHEIGHT parsing shared by `synergy bench`, `synergy bench model` and the benchmarks."""
import argparse

import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.sizes import parse_size, parse_sizes, size_arg


def test_parse_size_is_width_then_height():
    assert parse_size("640x480") == (640, 480)
    assert parse_size(" 320 X 240 ") == (320, 240)


@pytest.mark.parametrize("text", ["640by480", "640x", "x480", "640x480x3", "6.4x4.8", ""])
def test_parse_size_rejects_malformed_text_with_the_expected_form(text):
    with pytest.raises(SynergyError, match="use WIDTHxHEIGHT in pixels, e.g. 640x480"):
        parse_size(text)


def test_parse_size_minimum_side():
    assert parse_size("32x32", minimum=32) == (32, 32)
    with pytest.raises(SynergyError, match="too small: each side must be >= 32"):
        parse_size("64x16", minimum=32)
    with pytest.raises(SynergyError, match="too small"):
        parse_size("0x480")


def test_parse_sizes_comma_list():
    assert parse_sizes("320x240, 640x480,") == [(320, 240), (640, 480)]
    with pytest.raises(SynergyError, match="no image size"):
        parse_sizes(" , ")
    with pytest.raises(SynergyError, match="'64by48'"):
        parse_sizes("320x240,64by48")


def test_size_arg_gives_argparse_usage_errors(capsys):
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--size", type=size_arg)
    assert parser.parse_args(["--size", "64x48"]).size == (64, 48)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--size", "64by48"])
    assert exit_info.value.code == 2
    assert "bad image size '64by48'" in capsys.readouterr().err
