"""Ctrl-C must stop a run wherever it lands.

Python turns SIGINT into a KeyboardInterrupt in whatever code the main thread runs at
that moment. If that code is a finalizer (a `__del__`, a generator closed by the garbage
collector, a weakref callback), Python cannot raise there: it prints the exception as
"Exception ignored" and goes on, and the run finishes as if nobody had pressed Ctrl-C.
A run that makes many short-lived objects (futures, arrays) is inside a finalizer often
enough for that to happen now and then.
"""

import _thread
import sys
import threading


def keep_interrupts():
    """Deliver again, to the main thread, a KeyboardInterrupt that a finalizer swallowed;
    every other unraisable exception goes to the hook that was there before."""
    previous = sys.unraisablehook

    def unraisable(info):
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            # From another thread, a moment later: raised at once, in the main thread, the
            # new interrupt would land inside this hook and be swallowed again.
            timer = threading.Timer(0.05, _thread.interrupt_main)
            timer.daemon = True
            timer.start()
            return
        previous(info)

    sys.unraisablehook = unraisable
    return previous
