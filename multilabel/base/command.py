"""The one boundary between a command and its user: errors and Ctrl-C as one line and a code.

Every entry point (`retrain.py`, `data_generation.py`, `label_image.py` and the
`python -m multilabel.*` commands) parses its flags, then hands its work to
`run_command`, which is the only place that turns what the package raises into what the
user sees:

- a `UserError` prints its `details` (one a line), then `NAME: error: MESSAGE`, and
  exits with `error.exit_code`: 2 for bad input, 1 for `NoSpaceError` (the environment
  failed, not the input);
- a full disk met outside the project's writers (stdout redirected to a full disk) is
  the same `NAME: error: no space left ...` line and exit 1;
- Ctrl-C prints one line, `NAME: interrupted` and the command's sentence on what is kept
  (`; finished shards are kept`), and exits 130. Every file is written atomically, so
  nothing is left half-written wherever the interrupt lands.

Anything else is a bug and keeps its traceback. argparse's usage errors exit 2 by
themselves before the work starts.
"""

import sys

from multilabel.base.errors import (EXIT_INTERRUPTED, EXIT_OK, NoSpaceError, UserError,
                                    device_of, is_no_space)


def run_command(name, work, *args, interrupted=""):
    """Run `work(*args)` as the command `name`; return its exit status.

    `work` returns the exit status (an int), or None for 0. `interrupted` is the sentence the
    Ctrl-C line adds after `NAME: interrupted; ` (nothing when empty).
    """
    try:
        status = work(*args)
    except UserError as e:
        return report_error(name, e)
    except KeyboardInterrupt:
        print(f"{name}: interrupted" + (f"; {interrupted}" if interrupted else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if not is_no_space(e):
            raise
        return report_error(name, _no_space(e))
    if status is None:
        return EXIT_OK
    if not isinstance(status, int):  # sys.exit would print it and exit 1: a bug, not a status
        raise TypeError(f"{name}: the command returned {status!r}, not an exit status")
    return status


def report_error(name, error):
    """Print `error` (a `UserError`) as the command `name` does; return its exit code."""
    for line in error.details:
        print(line, file=sys.stderr)
    print(f"{name}: error: {error}", file=sys.stderr)
    return error.exit_code


def _no_space(error):
    """The `NoSpaceError` for a full disk that no writer of the project mapped (stdout)."""
    path = getattr(error, "filename", None)
    if path is None:
        return NoSpaceError("no space left on the device while writing the output")
    return NoSpaceError(f"no space left on {device_of(path)} while writing {path}")
