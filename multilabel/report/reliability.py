"""The report page's calibration section: reliability diagrams and calibration errors.

A reliability diagram puts each bin of predicted probability (evaluation.calibration's
bins) at its mean probability against the share of its entries that were true labels: a
calibrated model's points lie on the diagonal. One diagram pools every (image, class)
entry; one per class shows where a class is over- or under-confident. Each point's size
follows how many entries its bin holds.
"""

import html
import io

import numpy as np
from matplotlib.figure import Figure

from multilabel.evaluation import calibration
from multilabel.report import plots


def section(class_names, measures, test, data_uri):
    """The HTML section: the calibration applied and its effect on the test part, then
    the diagrams of the test probabilities (`test`: the page's TestImages)."""
    out = ['<section id="calibration"><h2>Calibration: does 0.8 mean 8 times in 10?</h2>']
    record = measures.get("calibration")
    if record:
        out.append(f"<p>{_applied(record, class_names)}</p>")
    if "test" not in measures or not len(test.paths):
        out.append("<p>The test part is empty: no reliability diagram.</p></section>")
        return "\n".join(out)
    png = reliability_diagrams(class_names, test.labels, test.probs)
    out.append(f'<img class="plot" src="{data_uri("image/png", png)}" '
               'alt="reliability diagrams of the test probabilities, pooled and per class">')
    out.append('<p class="note">Each point: a bin of predicted probability (width '
               f"{1 / calibration.BINS:g}), at its mean probability and the share of its "
               "(image, class) entries that are true labels; its size, how many entries it "
               "holds. ECE: the mean gap between the two, weighted by the bins' sizes.</p>")
    out.append("</section>")
    return "\n".join(out)


def _applied(record, class_names):
    method = record["method"]
    if method == "none":
        text = "No calibration: the probabilities are the trained layer's."
    else:
        text = (f"Calibration <b>{html.escape(method)}</b>, fitted on {record['images']:,} "
                f"{html.escape(record['fitted_on'])} predictions (never the test part) and "
                "folded into the final layer; the thresholds moved with it. Per class, "
                "logit &times; scale + shift: " + ", ".join(
                    f"{html.escape(name)} &times;{scale:.2f} {shift:+.2f}" for name, scale, shift
                    in zip(class_names, record["scale"], record["shift"])) + ".")
    if "test_ece_before" in record:
        low, high = record["test_ece_difference"]["interval"] or (float("nan"),) * 2
        text += (f" Test ECE {record['test_ece_before']:.4f} before, "
                 f"<b>{record['test_ece_after']:.4f}</b> after (difference "
                 f"{record['test_ece_difference']['difference']:+.4f}, 95 % interval "
                 f"{low:+.4f} to {high:+.4f}); mAP {record['test_map_before']:.4f} before, "
                 f"{record['test_map_after']:.4f} after; test label sets changed: "
                 f"{record['test_label_sets_changed']}.")
    return text


def reliability_diagrams(class_names, labels, probs):
    """Pooled and per-class reliability diagrams in one row (PNG bytes)."""
    labels, probs = np.asarray(labels, bool), np.asarray(probs, np.float64)
    panels = [("all classes", labels, probs)] + [
        (name, labels[:, c], probs[:, c]) for c, name in enumerate(class_names)]
    columns = min(len(panels), 6)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(2.4 * columns, 2.5 * rows), layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axes, (name, y, p) in zip(grid, panels):
        count, mean, frequency = calibration.reliability(y, p)
        filled = count > 0
        ece = calibration.expected_calibration_error(
            np.reshape(y, (len(y), -1)), np.reshape(p, (len(p), -1)))[0]
        axes.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle="--")
        axes.plot(mean[filled], frequency[filled], color="tab:blue", linewidth=1)
        axes.scatter(mean[filled], frequency[filled], s=8 + 120 * count[filled] / count.sum(),
                     color="tab:blue", zorder=3)
        axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted probability")
        axes.set_title(f"{name}  ECE {ece:.3f}", fontsize=9, parse_math=False)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=7)
    grid[0].set_ylabel("observed frequency")
    for axes in grid[len(panels):]:
        axes.set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=plots.DPI)
    return buffer.getvalue()
