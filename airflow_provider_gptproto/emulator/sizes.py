"""Frame sizes for the seed's ``dimension`` and for upstream ``ratio`` x ``resolution``.

The ratio/resolution table is the upstream Seedance output table; ``adaptive`` would
follow the input image, which the emulator never downloads, so it renders as 16:9.
"""

from __future__ import annotations

import math

DIMENSIONS = {"768:768": (768, 768), "768:1280": (768, 1280), "1280:768": (1280, 768)}

_TABLE: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {
        "16:9": (864, 480),
        "4:3": (736, 544),
        "1:1": (640, 640),
        "3:4": (544, 736),
        "9:16": (480, 864),
        "21:9": (960, 416),
    },
    "720p": {
        "16:9": (1248, 704),
        "4:3": (1120, 832),
        "1:1": (960, 960),
        "3:4": (832, 1120),
        "9:16": (704, 1248),
        "21:9": (1504, 640),
    },
    "1080p": {
        "16:9": (1920, 1088),
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1088, 1920),
        "21:9": (2176, 928),
    },
}


def size_for(ratio: str, resolution: str) -> tuple[int, int]:
    """Width and height for an upstream ratio and resolution."""
    return _TABLE[resolution]["16:9" if ratio == "adaptive" else ratio]


def describe(width: int, height: int) -> tuple[str, str]:
    """Ratio and resolution words for a seed ``dimension`` (e.g. 1280x768 -> "5:3", "768p")."""
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}", f"{min(width, height)}p"
