"""What the head's training and fine-tuning share: the rule that keeps a model, and the
line that reports each evaluation.

Both phases score the model on the validation part and keep a copy of the best one.
One rule serves both: a model replaces the kept one only when its validation mAP is
higher (a tie keeps the earlier model), and a nan score, which means there is no
validation data, always replaces it, so that without validation the latest model wins.
"""

import math


def replaces(score, kept_score):
    """Whether a model scoring `score` replaces the kept one, which scored `kept_score`."""
    return math.isnan(score) or score > kept_score


def progress_line(where, loss, result, kept):
    """One evaluation's log line: `where` (a step or an epoch), the mean training loss
    since the last evaluation (None before any training), `result` (metrics.evaluate's
    measures on the validation part), and whether the model was kept."""
    score = result["mean_average_precision"]
    loss_text = "" if loss is None else f"train loss {loss:.4f}, "
    return (f"{where}: {loss_text}validation mAP {float('nan') if score is None else score:.4f}, "
            f"label accuracy {result['label_accuracy']:.4f}{' (kept)' if kept else ''}")
