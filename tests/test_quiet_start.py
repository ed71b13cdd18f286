"""TensorFlow starts without its C++ lines on stderr, and later warnings still show.

The descriptor capture is checked in this process with writes to descriptor 2; the real
start-up in fresh processes (all started at once: each spends seconds importing
TensorFlow). `label_image.py` and `retrain.py` are checked on every run of
tests/test_bad_inputs.py and tests/test_faults.py.
"""

import os
import subprocess
import sys

import pytest

from multilabel.base.quiet_start import captured_stderr
from tests.tf_start_up import start_up_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Starts TensorFlow as the scripts do, then warns the three ways a run can.
AFTER_START = """
import logging, os, sys, warnings
from multilabel.base.quiet_start import start_tensorflow
tf = start_tensorflow()
print(tf.constant(2).numpy() * 21)
logging.basicConfig(format="%(levelname)s %(message)s")
logging.getLogger("retrain").warning("our warning")
warnings.warn("a Python warning")
os.write(2, b"a native line after start-up\\n")
"""


# (pytest's capfd sends sys.stderr elsewhere than descriptor 2, so these write to it directly.)

def test_what_is_written_to_descriptor_2_inside_is_hidden(capfd):
    with captured_stderr():
        os.write(2, b"I0000 native chatter\n")
    os.write(2, b"native after\n")
    assert capfd.readouterr().err == "native after\n"


def test_what_was_hidden_shows_when_the_block_fails(capfd):
    with pytest.raises(ImportError, match="no such library"):
        with captured_stderr():
            os.write(2, b"F0000 why it failed\n")
            raise ImportError("no such library")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "F0000 why it failed\nafter\n"


def test_ctrl_c_during_start_up_shows_nothing_captured(capfd):
    with pytest.raises(KeyboardInterrupt):
        with captured_stderr():
            os.write(2, b"I0000 native chatter\n")
            raise KeyboardInterrupt
    assert capfd.readouterr().err == ""


def _python(*args, env=None):
    return subprocess.Popen([sys.executable, *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


def test_start_up_is_quiet_and_later_warnings_reach_stderr():
    quiet = _python("-c", AFTER_START)
    # The user's way to see TensorFlow's own lines; it also shows that there are some to
    # hide here, so that the quiet run passes for the right reason.
    shown = _python("-c", AFTER_START, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    module = _python("-m", "multilabel.build_modules", "--model_dir", "unused", "no_such_module")
    out, err = quiet.communicate(timeout=300)
    assert (quiet.returncode, out) == (0, "42\n"), err
    assert not start_up_lines(err), err
    lines = err.splitlines()
    assert "WARNING our warning" in lines
    assert any(line.endswith("UserWarning: a Python warning") for line in lines), err
    assert "a native line after start-up" in lines

    out, err = shown.communicate(timeout=300)
    assert shown.returncode == 0, err
    assert start_up_lines(err), err
    assert "WARNING our warning" in err.splitlines()

    _, err = module.communicate(timeout=300)
    assert module.returncode == 2
    assert not start_up_lines(err), err
    assert "unknown module 'no_such_module'" in err.splitlines()[-1]
