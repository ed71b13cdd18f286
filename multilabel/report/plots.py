"""The report page's plots, drawn by matplotlib into PNG bytes.

Figures are made with `matplotlib.figure.Figure` directly, never through pyplot: no
global state and no GUI backend to pick, so drawing works headless and in any thread.
"""

import io
import math

import numpy as np
from matplotlib.figure import Figure

DPI = 96
KEPT = dict(color="tab:green", linestyle="--", linewidth=1)


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def training_curve(history, kept_step):
    """Train loss and validation mAP at each evaluation, the kept step marked (PNG bytes).

    `history` holds `trainer.Evaluation`s; a run without validation data shows its loss
    alone.
    """
    steps = [e.step for e in history]
    figure = Figure(figsize=(9, 3), layout="constrained")
    loss_axes, map_axes = figure.subplots(1, 2)
    loss_axes.plot(steps, [e.train_loss for e in history], color="tab:blue", marker=".",
                   markersize=3, linewidth=1)
    loss_axes.set(title="Train loss (mean since the previous evaluation)", xlabel="step",
                  ylabel="cross-entropy")
    scores = [e.validation_map for e in history]
    if all(math.isnan(s) for s in scores):
        map_axes.text(0.5, 0.5, "no validation data", ha="center", va="center",
                      transform=map_axes.transAxes)
    else:
        map_axes.plot(steps, scores, color="tab:orange", marker=".", markersize=3, linewidth=1)
    map_axes.set(title="Validation mAP", xlabel="step", ylabel="mAP")
    for axes in (loss_axes, map_axes):
        axes.axvline(kept_step, **KEPT, label=f"kept step {kept_step}")
        axes.grid(alpha=0.3)
        axes.title.set_fontsize(10)
    map_axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def precision_recall(name, precision, recall, average_precision, chosen):
    """One class's precision-recall curve with its chosen threshold marked (PNG bytes).

    `precision`, `recall` are the curve's points by descending threshold (as
    `metrics.precision_recall_curve` gives them); `chosen` is `(threshold, precision,
    recall)` of the threshold in use. The curve is drawn in steps, the shape average
    precision sums: between two points, precision is the one at the higher recall.
    """
    threshold, chosen_precision, chosen_recall = chosen
    figure = Figure(figsize=(3.3, 3.1), layout="constrained")
    axes = figure.subplots()
    axes.plot(np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision]),
              drawstyle="steps-pre", color="tab:blue", linewidth=1.2)
    axes.plot([chosen_recall], [chosen_precision], "o", color="tab:red", markersize=6,
              label=f"threshold {threshold:.3g}\nP {chosen_precision:.2f}  R {chosen_recall:.2f}")
    axes.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="recall", ylabel="precision")
    # A class name is text, never mathtext: `$\badcmd{$` would fail the whole figure.
    axes.set_title(f"{name}   AP {average_precision:.3f}", fontsize=10, parse_math=False)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    return _png(figure)
