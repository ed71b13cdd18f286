"""TensorFlow's C++ start-up lines, which no script may show (multilabel.base.quiet_start)."""

import re

# The absl preamble, any absl/glog-formatted line ("I0000 00:00:1796163777.011856  5519
# cudart_stub.cc:31] ..."), cpu_feature_guard's second line, the CUDA probes by name, and
# LiteRT's note on applying XNNPACK.
START_UP_LINE = re.compile(r"^WARNING: All log messages before absl|^[IWEF]\d{4} [\d:.]+ +\d+ "
                           r"\S+:\d+\]|^To enable the following instructions|cuInit|cudart|"
                           r"^INFO: Created TensorFlow Lite XNNPACK delegate")


def start_up_lines(stderr):
    """The lines of `stderr` that TensorFlow's native start-up wrote."""
    return [line for line in stderr.splitlines() if START_UP_LINE.search(line)]
