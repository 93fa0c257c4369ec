"""A progress bar for long CLI work: blocks/s, events/s and ETA on one line of stderr.

On a terminal the line redraws in place; elsewhere (logs, CI) it prints a line now and then.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 28  # characters of the bar itself
TTY_REDRAW = 0.1  # seconds between redraws on a terminal
LOG_EVERY = 5.0  # seconds between lines when not on a terminal


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class BlockProgress:
    def __init__(self, start: int, stream: TextIO = sys.stderr) -> None:
        self.start = start
        self.stream = stream
        self.tty = stream.isatty()
        self.began = time.monotonic()
        self._last_draw = 0.0
        self.line = ""

    def __call__(self, block: int, target: int, events: int) -> None:
        now = time.monotonic()
        if now - self._last_draw < (TTY_REDRAW if self.tty else LOG_EVERY) and block < target:
            return
        self._last_draw = now
        self.line = self.render(block, target, events, now - self.began)
        self.stream.write(f"\r{self.line}\x1b[K" if self.tty else f"{self.line}\n")
        self.stream.flush()

    def render(self, block: int, target: int, events: int, elapsed: float) -> str:
        total = max(target - self.start, 1)
        done = min(max(block - self.start, 0), total)
        filled = BAR_WIDTH * done // total
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        return (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done / total:5.1f}%  "
            f"block {block}/{target}  {rate:,.0f} blocks/s  "
            f"{events / elapsed if elapsed > 0 else 0:,.0f} events/s  ETA {_duration(eta)}"
        )

    def finish(self) -> None:
        if self.tty and self.line:
            self.stream.write("\n")
            self.stream.flush()
