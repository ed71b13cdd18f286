"""Start TensorFlow without its C++ start-up lines on the terminal.

Importing TensorFlow 2.21 writes, before a line of ours, lines such as

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use ...

(the first two once for each of its two native libraries), and making its devices the first
time writes `E0000 ... failed call to cuInit` on a machine without a GPU. They are written
by C++ straight to file descriptor 2, most of them before absl's logging is set up, so
`TF_CPP_MIN_LOG_LEVEL` cannot hide them and Python's `sys.stderr` never sees them.

`start_tensorflow()` does both steps (the import, then listing the devices, which is
where the cuInit line comes from) with descriptor 2 pointed at a temporary file, and
shows that file only if a step fails. Everything after it reaches the terminal as
before: a real warning later in the run is not hidden. With `TF_CPP_MIN_LOG_LEVEL=0` set
explicitly, nothing is captured and TensorFlow's own lines show, for debugging.
"""

import contextlib
import faulthandler
import os
import sys
import tempfile

# Set to "0" by the user: show TensorFlow's start-up lines instead of capturing them.
SHOW_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def start_tensorflow():
    """Import TensorFlow and make its devices with its start-up lines kept off stderr.

    Call it before anything imports TensorFlow (the scripts do, once their flags are
    parsed); later imports then find it loaded and print nothing. Returns the module.
    """
    if os.environ.get(SHOW_VARIABLE) == "0":
        capture = contextlib.nullcontext()
    else:
        capture = captured_stderr()
        # Its INFO lines after start-up too ("MLIR V1 optimization pass is not enabled" at
        # a graph's first run), for the Python API as the scripts already do: unless set.
        os.environ.setdefault(SHOW_VARIABLE, "2")
    with capture:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the cuInit line comes here, not at the import
    return tf


@contextlib.contextmanager
def captured_stderr():
    """Point file descriptor 2 at a temporary file for the block, and show what was
    written there only if the block fails (raises an exception; not on Ctrl-C).

    Works on the descriptor, so it catches what native code writes too. Should the
    process die inside the block (a native library aborting), faulthandler writes the
    Python traceback to the real stderr, so the death is not silent.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    crash_report = None
    if not faulthandler.is_enabled():  # else whoever enabled it chose where it writes
        crash_report = os.fdopen(os.dup(saved), "w")
        faulthandler.enable(crash_report)
    failed = False
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if crash_report is not None:
                faulthandler.disable()
                crash_report.close()
            if failed:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                sys.stderr.flush()
