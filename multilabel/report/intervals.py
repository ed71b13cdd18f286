"""The report page's interval cells: each test measure's 95 % interval beside it.

metrics.json holds, beside each test measure, the interval a bootstrap over the test
images gives it (evaluation.bootstrap); these cells show it small under or beside the
number, so that two runs' pages can be compared with the spread in view.
"""

HEADER = "test, 95 % interval"


def summary_cell(test, key):
    """The interval of summary measure `key` of the test part, or a dash."""
    interval = test.get("intervals", {}).get(key)
    return "&ndash;" if interval is None else f"{interval[0]:.4f} &ndash; {interval[1]:.4f}"


def class_cell(test, key, c):
    """Class `c`'s value of per-class measure `key`, its interval under it."""
    value = test[key][c]
    cell = "&ndash;" if value is None else f"{value:.4f}"
    per_class = test.get("intervals", {}).get(key)
    if per_class is None or per_class[c] is None:
        return cell
    low, high = per_class[c]
    return f'{cell}<br><span class="note">{low:.3f}&ndash;{high:.3f}</span>'


def note(measures):
    """How the intervals were made, from metrics.json's `intervals` record."""
    how = measures.get("intervals")
    if not how:
        return ""
    return (f'<p class="note">Intervals: {how["level"]:.0%} {how["method"]}, '
            f'{how["resamples"]:,} resamples (seed {how["seed"]}); the thresholds stay fixed. '
            "A difference between two runs on the same test images is surer than their "
            "intervals suggest: compare them on the same resamples (metrics.json's "
            "<code>fine_tuning_gain</code>; <code>python -m bench.compare_runs A B</code> for "
            "two run folders).</p>")
