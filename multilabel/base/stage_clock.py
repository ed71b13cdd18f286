"""How long each stage of a run took, for the report page."""

import time


class StageClock:
    """Seconds per stage, measured between calls: `lap("data")` closes the stage "data".

    Laps rather than a context manager per stage, so timing a run adds one line after
    each stage instead of indenting it.
    """

    def __init__(self):
        self._last = time.perf_counter()
        self.seconds = {}  # stage name -> seconds, in the order the stages ended

    def lap(self, stage):
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
