"""Colour on or off: ``--color auto|always|never``, ``$NO_COLOR`` and whether the output is a terminal.

* ``never`` - no ANSI escape codes at all;
* ``always`` - styles even into a pipe or a file (``--color always | less -R``);
* ``auto`` (default) - styles when the stream is a terminal and ``$NO_COLOR``
  is unset or empty (https://no-color.org); ``$FORCE_COLOR`` forces them.

The ``--color`` option beats the environment.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any, TextIO

__all__ = ["ColorMode", "console_options", "set_color_mode", "use_color"]


class ColorMode(str, Enum):
    """The values of ``--color``."""

    auto = "auto"
    always = "always"
    never = "never"

    def __str__(self) -> str:
        return self.value


_mode: list[ColorMode] = [ColorMode.auto]


def set_color_mode(mode: ColorMode | str) -> None:
    """Set the mode of this process (the root ``--color`` option)."""
    _mode[0] = ColorMode(mode)


def use_color(stream: TextIO) -> bool:
    """Whether output to ``stream`` gets colours and styles."""
    mode = _mode[0]
    if mode is ColorMode.always:
        return True
    if mode is ColorMode.never or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console_options(stream: TextIO) -> dict[str, Any]:
    """Keyword arguments of a rich ``Console`` writing to ``stream`` under the colour mode."""
    if use_color(stream):
        return {"force_terminal": True}
    return {"color_system": None, "no_color": True}
