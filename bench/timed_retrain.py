"""Run retrain.py with each log line stamped in milliseconds since the process started.

run_benchmarks.py reads these stamps to split a run's time into its phases; the run
itself is retrain.py's own `main`, unchanged.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Configured before retrain.main, whose own basicConfig then changes nothing.
logging.basicConfig(level=logging.INFO, format="@%(relativeCreated)d %(levelname)s %(message)s")

import retrain  # noqa: E402

if __name__ == "__main__":
    sys.exit(retrain.main(sys.argv[1:]))
