"""Run retrain.py with each log line stamped in milliseconds since the process started.

    python -m bench.timings.timed_retrain [retrain.py's flags]   # from the repository root

run_benchmarks.py reads these stamps to split a run's time into its phases; the run
itself is retrain.py's own `main`, unchanged (its flags, defaults and error handling:
the run as users start it). Run as a module from the repository root, which puts the
root, and so retrain.py, on the import path.
"""

import logging
import sys

# Configured before retrain.main, whose own basicConfig then changes nothing.
logging.basicConfig(level=logging.INFO, format="@%(relativeCreated)d %(levelname)s %(message)s")

import retrain  # noqa: E402

if __name__ == "__main__":
    sys.exit(retrain.main(sys.argv[1:]))
