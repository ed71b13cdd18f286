"""Progress of a long loop: tqdm's bar on a terminal, a plain log line now and then elsewhere.

A bar redraws itself several times a second; sent to a file (`retrain.py ... 2> run.log`)
every redraw stays there, 60 KB for one fine-tuning run. So when the stream is not a
terminal, progress is a logged line (`Bottlenecks: 400/2000 img (20 %), 51.3 img/s, 31 s
left`) at each tenth of the work or after 30 s without one, whichever comes first. A
transient display (`leave=False`, a pass that a summary line follows) logs only the 30 s
lines, so that a short one leaves nothing in the file. Every loop with progress uses
`progress()`, so the two displays stay the same everywhere. Both are INFO output: where
logging shows no INFO lines (`retrain.py --logging_verbosity WARN`, `multilabel.train(...,
quiet=True)`), no bar is drawn either.
"""

import contextlib
import logging
import math
import sys
import time

from tqdm import tqdm

logger = logging.getLogger(__name__)

EVERY_FRACTION = 0.1
EVERY_SECONDS = 30.0


@contextlib.contextmanager
def progress(total, description, unit="img", leave=True, stream=None, clock=time.monotonic):
    """A display of `total` units of work; call its `update(n, **postfix)` as units end.

    `postfix` values (`loss="0.1234"`) are shown after the counts. `stream` is where a bar
    would go (stderr by default); whether it is a terminal chooses the display, and no bar
    is drawn where INFO lines are not shown.
    """
    stream = stream or sys.stderr
    if _is_terminal(stream) and logger.isEnabledFor(logging.INFO):
        with tqdm(total=total, unit=unit, desc=description, dynamic_ncols=True, leave=leave,
                  file=stream) as bar:
            yield _Bar(bar)
    else:
        yield PlainProgress(total, description, unit, leave, clock)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update(self, n, **postfix):
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(n)


class PlainProgress:
    """Logs a line at each tenth of `total` (unless `marks` is off) and after every
    `EVERY_SECONDS` without a line."""

    def __init__(self, total, description, unit, marks=True, clock=time.monotonic):
        self.total, self.description, self.unit, self.marks = total, description, unit, marks
        self.clock = clock
        self.done = 0
        self.start = self.last = clock()
        self.next_mark = self._mark_after(0)

    def update(self, n, **postfix):
        self.done += n
        now = self.clock()
        at_mark = self.marks and self.done >= self.next_mark
        if at_mark or now - self.last >= EVERY_SECONDS:
            logger.info("%s", self.line(now, postfix))
            self.last = now
            self.next_mark = self._mark_after(self.done)

    def line(self, now, postfix=None):
        if self.total:
            parts = [f"{self.description}: {self.done}/{self.total} {self.unit} "
                     f"({100 * self.done / self.total:.0f} %)"]
        else:
            parts = [f"{self.description}: {self.done} {self.unit}"]
        seconds = now - self.start
        if seconds > 0:
            rate = self.done / seconds
            parts.append(f"{rate:.1f} {self.unit}/s")
            if self.total and rate > 0 and self.done < self.total:
                parts.append(f"{(self.total - self.done) / rate:.0f} s left")
        parts.extend(f"{key}={value}" for key, value in (postfix or {}).items())
        return ", ".join(parts)

    def _mark_after(self, done):
        """The next tenth of the total above `done`."""
        if not self.total:
            return math.inf
        tenth = self.total * EVERY_FRACTION
        return (math.floor(done / tenth + 1e-9) + 1) * tenth
