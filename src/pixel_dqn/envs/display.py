"""A virtual X display (Xvfb) for renderers that need one, started once per process."""

from __future__ import annotations

import atexit
import shutil
from typing import Any


class DisplayError(RuntimeError):
    """The virtual display cannot start; the message is one line that says what to install."""


class VirtualDisplay:
    """Starts an Xvfb display on first use and stops it when the process exits.

    CartPole's ``rgb_array`` rendering needs no X server (pygame draws off-screen with
    ``SDL_VIDEODRIVER=dummy``), so this is only for renderers and recorders that do.
    """

    def __init__(self, size: tuple[int, int] = (1400, 900)) -> None:
        self.size = size
        self._display: Any = None

    @property
    def running(self) -> bool:
        return self._display is not None

    def start(self) -> None:
        """Start Xvfb and point ``DISPLAY`` at it; a second call does nothing."""
        if self._display is not None:
            return
        if shutil.which("Xvfb") is None:
            raise DisplayError(
                "display.virtual=true needs the Xvfb binary, which is not on PATH: install the "
                "xvfb package (e.g. apt-get install -y xvfb) or set display.virtual=false"
            )
        from pyvirtualdisplay import Display

        self._display = Display(visible=False, size=self.size).start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop Xvfb and restore ``DISPLAY``; safe to call twice."""
        if self._display is not None:
            self._display.stop()
            self._display = None
