"""Progress: tqdm's bar on a terminal, a plain line at each tenth or after 30 s elsewhere."""

import io
import logging

from multilabel.base.progress import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "multilabel.base.progress"]


def test_a_file_gets_one_line_a_tenth_and_no_redraws(caplog):
    stream, clock = io.StringIO(), Clock()
    with caplog.at_level(logging.INFO), progress(200, "Bottlenecks", stream=stream,
                                                 clock=clock) as shown:
        for _ in range(50):
            clock.now += 0.5
            shown.update(4, loss="0.1234")
    assert stream.getvalue() == ""
    logged = lines(caplog)
    assert len(logged) == 10
    assert logged[0] == "Bottlenecks: 20/200 img (10 %), 8.0 img/s, 22 s left, loss=0.1234"
    assert logged[-1] == "Bottlenecks: 200/200 img (100 %), 8.0 img/s, loss=0.1234"


def test_a_slow_stretch_is_reported_every_30_seconds(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO), progress(1000, "Epoch 1/5", stream=io.StringIO(),
                                                 clock=clock) as shown:
        for _ in range(7):
            clock.now += 20
            shown.update(1)
    assert [line.split(",")[0] for line in lines(caplog)] == [
        "Epoch 1/5: 2/1000 img (0 %)", "Epoch 1/5: 4/1000 img (0 %)",
        "Epoch 1/5: 6/1000 img (1 %)"]


def test_a_transient_display_logs_only_long_stretches(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO), progress(10, "Validation", leave=False,
                                                 stream=io.StringIO(), clock=clock) as shown:
        for _ in range(10):
            clock.now += 1
            shown.update(1)
    assert lines(caplog) == []


def test_a_terminal_gets_the_bar_and_no_log_lines(caplog):
    stream = Terminal()
    with caplog.at_level(logging.INFO), progress(10, "Bottlenecks", stream=stream) as shown:
        for _ in range(10):
            shown.update(1, loss="0.5")
    assert "Bottlenecks: 100%" in stream.getvalue() and "loss=0.5" in stream.getvalue()
    assert lines(caplog) == []
