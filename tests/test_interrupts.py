"""A Ctrl-C that lands in a finalizer still stops the run."""

import gc
import sys
import time

import pytest

from multilabel.base.interrupts import keep_interrupts


class _InterruptedWhileCollected:
    def __del__(self):
        raise KeyboardInterrupt  # as if SIGINT arrived while this finalizer ran


def test_an_interrupt_swallowed_by_a_finalizer_is_delivered_again():
    previous = keep_interrupts()
    try:
        with pytest.raises(KeyboardInterrupt):
            _InterruptedWhileCollected()  # collected at once: its __del__ runs here
            gc.collect()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the main thread sees it at its next step
                time.sleep(0.01)
    finally:
        sys.unraisablehook = previous


def test_other_unraisable_exceptions_reach_the_previous_hook():
    seen = []
    original = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        keep_interrupts()

        class _Broken:
            def __del__(self):
                raise ValueError("in a finalizer")

        _Broken()
        gc.collect()
        assert [type(info.exc_value) for info in seen] == [ValueError]
    finally:
        sys.unraisablehook = original
