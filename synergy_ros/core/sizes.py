"""Image sizes as cameras quote them: ``"WIDTHxHEIGHT"`` text -> (width, height) pixels.

One parser for every command-line option and benchmark that takes an image size, so all of
them accept the same spellings (``640x480``, ``640X480``, `` 640 x 480 ``) and reject bad
ones with the same message. Note the order: width first, as quoted; tensors and
``ModelMeta.input_size`` use (height, width).
"""
from __future__ import annotations

import argparse

from synergy_ros.core.errors import SynergyError


def parse_size(text: str, minimum: int = 1) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480) = (width, height) in pixels.

    Raises ``SynergyError`` naming the text and the expected form when it is not two
    positive integers joined by ``x``, or when a side is below ``minimum`` pixels.
    """
    parts = str(text).lower().split("x")
    try:
        width, height = (int(part.strip()) for part in parts)
    except ValueError:
        raise SynergyError(f"bad image size {text!r}: use WIDTHxHEIGHT in pixels, "
                           f"e.g. 640x480") from None
    if width < minimum or height < minimum:
        raise SynergyError(f"image size {text!r} is too small: each side must be >= "
                           f"{minimum} pixels (WIDTHxHEIGHT, e.g. 640x480)")
    return width, height


def parse_sizes(text: str, minimum: int = 1) -> list[tuple[int, int]]:
    """``"320x240,640x480"`` -> [(320, 240), (640, 480)]; see ``parse_size``."""
    sizes = [parse_size(item, minimum) for item in str(text).split(",") if item.strip()]
    if not sizes:
        raise SynergyError(f"no image size in {text!r}: use a comma list of WIDTHxHEIGHT, "
                           f"e.g. 320x240,640x480")
    return sizes


def size_arg(text: str) -> tuple[int, int]:
    """``argparse`` ``type=`` for one WIDTHxHEIGHT value (errors become usage errors)."""
    try:
        return parse_size(text)
    except SynergyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
