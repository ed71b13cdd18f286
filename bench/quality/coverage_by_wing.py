"""Line and branch coverage of the package, one row per wing, from `coverage json`'s report.

`make coverage` runs the test suite under coverage.py and then this script:

    python -m coverage json -q -o coverage.json && python -m bench.quality.coverage_by_wing coverage.json

A wing is a subpackage of `multilabel` (`features.backbones` counts apart from
`features`); "root" is the modules at the package root. The last row is the package,
with coverage.py's own figure (lines and branches together).
"""

import argparse
import json
import os
import sys


def wing_of(path):
    """`data` for multilabel/data/x.py, `features.backbones` for a backbone, `root` else."""
    parts = os.path.normpath(path).split(os.sep)
    inner = parts[parts.index("multilabel") + 1:-1]
    return ".".join(inner) or "root"


def table(report):
    """Rows `(wing, lines, covered lines, branches, covered branches)`, wings sorted."""
    totals = {}
    for path, entry in report["files"].items():
        s = entry["summary"]
        row = totals.setdefault(wing_of(path), [0, 0, 0, 0])
        row[0] += s["num_statements"]
        row[1] += s["covered_lines"]
        row[2] += s.get("num_branches", 0)
        row[3] += s.get("covered_branches", 0)
    return [(wing, *totals[wing]) for wing in sorted(totals)]


def _percent(part, whole):
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", help="the JSON report of `coverage json`")
    args = p.parse_args(argv)
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    print(f"{'wing':<20} {'lines':>6} {'covered':>7} {'branches':>8} {'covered':>7}")
    for wing, lines, covered, branches, covered_branches in table(report):
        print(f"{wing:<20} {lines:>6} {_percent(covered, lines):>7} {branches:>8} "
              f"{_percent(covered_branches, branches):>7}")
    s = report["totals"]
    print(f"{'package':<20} {s['num_statements']:>6} "
          f"{_percent(s['covered_lines'], s['num_statements']):>7} "
          f"{s.get('num_branches', 0):>8} "
          f"{_percent(s.get('covered_branches', 0), s.get('num_branches', 0)):>7}")
    print(f"coverage.py's figure (lines and branches together): {s['percent_covered_display']}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
