"""A call into native code with a deadline and Ctrl-C that hold: `call_with_deadline`.

TensorFlow's and LiteRT's native code does not come back to Python until it is done: a
TFLite `WHILE` that never ends, or TensorFlow setting up thousands of nested function
calls before its own run deadline starts counting, holds the calling thread for ever,
and Python runs a signal handler only in the main thread between bytecodes, so Ctrl-C
does nothing either. So the call runs on a daemon thread while the caller's thread
waits on an event, a wait that both a deadline and SIGINT end. On either, the caller
gets an exception (the deadline's `UserError`, or KeyboardInterrupt) at once, and the
stuck call is *abandoned*: native code cannot be stopped from outside, so its thread
runs on. A command then ends its process without waiting for it (`exit_now`); a
Python caller (`multilabel.Classifier`) gets the error and the thread keeps one core
busy until the call returns or the process exits (docs/faults.md).

Worst case: every call made through here returns, or raises, within its `timeout` (plus
the thread's start); a command with several batches waits at most `timeout` per batch,
and Ctrl-C ends it at once.
"""

import os
import sys
import threading

from multilabel.base.errors import UserError

# The words every deadline's message holds (`stuck_error` finds them in what a runner
# such as Beam made of the error on a worker).
STOPPED = "allowed (--timeout); does it loop forever? Stopped"

_abandoned = []  # threads still in a call that the caller stopped waiting for


def call_with_deadline(function, timeout, on_timeout):
    """`function()`, run on a daemon thread, waited for at most `timeout` seconds (None:
    for ever); past it, raise `on_timeout()` (an exception). KeyboardInterrupt ends the
    wait too. What `function` raises is raised here."""
    outcome = {}
    done = threading.Event()

    def target():
        try:
            outcome["value"] = function()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = e
        finally:
            done.set()

    thread = threading.Thread(target=target, name="deadline", daemon=True)
    # Counted as abandoned from its start until it is waited for to the end: Ctrl-C can
    # land anywhere, `thread.start()` included.
    _abandoned.append(thread)
    thread.start()
    if not done.wait(timeout):  # KeyboardInterrupt too leaves the thread counted
        raise on_timeout()
    _abandoned.remove(thread)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def too_long(what, timeout, path):
    """The UserError of a run of `what` ("the graph") past its `timeout` seconds."""
    return UserError(f"running {what} on one batch took longer than the {timeout:g} s "
                     f"{STOPPED}", path)


def abandoned():
    """Whether a call that the caller stopped waiting for is still running."""
    return any(thread.is_alive() for thread in _abandoned)


def exit_now(status):
    """End the process with `status`. Where a call was abandoned, without waiting for it:
    Python's own exit would join the thread pools it runs in, and native libraries'
    destructors may wait on the stuck work, for ever. Streams are flushed first."""
    if not abandoned():
        return status
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def stuck_error(error):
    """The one-line UserError of a deadline met on a worker, found in `error` as a runner
    such as Beam re-raises it (chained, or re-made with its text and a suffix), or None."""
    found, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if STOPPED in str(error):
            found.append(error)
        error = error.__cause__ or error.__context__
    for error in found:  # the original first: it names the model's file
        if isinstance(error, UserError) and error.path and error.message.endswith(STOPPED):
            return error
    if not found:
        return None
    line = next(line for line in str(found[0]).splitlines() if STOPPED in line)
    return UserError(line[:line.index(STOPPED) + len(STOPPED)])
