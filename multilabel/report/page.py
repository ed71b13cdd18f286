"""The report page: one HTML file that shows how a run went.

What people check first after training a classifier is visual: where each label's
precision/recall trade-off sits, whether training converged, which images came out wrong
and why, and which given labels look wrong. The page holds it all in one file that
opens from disk in any browser and fetches nothing: plots (`plots`, matplotlib) and
thumbnails are inline data URIs, the style sheet is inline, there is no script and no
link out but one, to the review page beside it (review_page). It is built with the
stdlib (`html.escape`); every text that comes from the data is escaped.
"""

import base64
import dataclasses
import datetime
import html
import io
import math

import numpy as np

from multilabel.base import atomic
from multilabel.evaluation import metrics
from multilabel.report import heatmaps, intervals, plots, reliability
from multilabel.data.images import decode_image
from multilabel.evaluation.thresholds import apply_thresholds

THUMBNAIL_SIZE = 128  # pixels, the longer side: ~5 KB a JPEG, ~0.5 MB for 100 images
CORRECT_SHOWN = 8  # confident correct images shown, for contrast with the wrong ones

# (key in metrics.evaluate's dict, name on the page); None keys separate groups.
SUMMARY_MEASURES = (
    ("label_accuracy", "label accuracy (1 - Hamming loss)"),
    ("exact_match", "exact match (whole label set right)"),
    ("micro_precision", "micro precision"), ("micro_recall", "micro recall"),
    ("micro_f1", "micro F1"),
    ("macro_precision", "macro precision"), ("macro_recall", "macro recall"),
    ("macro_f1", "macro F1"),
    ("mean_average_precision", "mAP"),
    ("label_ranking_average_precision",
     "average precision, example-based (the MIML papers' measure; sklearn's LRAP)"),
    ("one_error", "one-error (lower is better)"), ("coverage", "coverage (lower is better)"),
    ("ranking_loss", "ranking loss (lower is better)"),
    ("expected_calibration_error", "calibration error, ECE (lower is better)"),
)
PER_CLASS_HEADER = ("class", "threshold", "AP", "precision", "recall", "F1", "positives")


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What the page says about the run itself."""

    module: str  # as asked for on the command line
    module_details: str  # where it was found, its input size, features, engine
    sizes: dict  # part name -> number of images
    class_names: tuple
    changed_flags: tuple  # (flag, value) pairs that differ from retrain.py's defaults
    stage_seconds: dict  # stage -> seconds, in run order
    history: tuple  # a trainer.Evaluation per evaluation
    model_card: str = ""  # the run's model card, relative to the page; "" for none


@dataclasses.dataclass(frozen=True)
class TestImages:
    """The test part as the run saw it: what the wrong-image gallery is drawn from."""

    paths: tuple
    labels: np.ndarray  # [N, C] of 0/1
    probs: np.ndarray  # [N, C]
    thresholds: np.ndarray  # [C], the chosen ones
    never_empty: bool = False  # the top-margin rule applies (evaluation.thresholds)


def write_page(path, run, measures, test, max_wrong, correct_shown=CORRECT_SHOWN, issues=(),
               explained=None, sections=()):
    """Atomically write the page for one run.

    `measures` is the run's metrics.json content (`best_step`, `thresholds`, `test` and
    `validation` when those parts were not empty). At most `max_wrong` wrong test
    images are shown, the worst by loss first (-1: all of them), and as many of
    `issues` (label_issues.Issue, worst first), the images whose labels look wrong.
    `explained` holds the class activation maps of the heat-map section
    (report.heatmaps.Explained; None: the section says why there are none);
    `sections` are more sections' HTML, put at the end.
    """
    atomic.write_text(path, render(run, measures, test, max_wrong, correct_shown, issues,
                                   explained, sections))


def render(run, measures, test, max_wrong, correct_shown=CORRECT_SHOWN, issues=(),
           explained=None, sections=()):
    """The page's HTML text."""
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<h1>Retraining report</h1>",
        f'<p class="note">{_e(run.module)}, kept step {measures["best_step"]}, '
        f"written {written}{_card_link(run.model_card)}</p>",
        _run_section(run),
        _measures_section(run.class_names, measures),
        _curves_section(run, measures, test),
        reliability.section(run.class_names, measures, test, _data_uri),
        *_gallery_sections(run.class_names, test, max_wrong, correct_shown),
        heatmaps.section(run.class_names, explained, _data_uri),
        _issues_section(run.class_names, issues, test.thresholds, max_wrong, test.never_empty),
        *sections,
    ]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Retraining report: {_e(run.module)}</title>\n<style>{STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def image_losses(labels, probs):
    """Each image's mean binary cross-entropy over its labels [N]: how wrong it is."""
    probs = np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    labels = np.asarray(labels, bool)
    return -np.where(labels, np.log(probs), np.log1p(-probs)).mean(axis=1)


def pick_examples(labels, probs, thresholds, max_wrong, correct_shown, never_empty=False):
    """`(wrong, correct, wrong_count)`: indices of images to show.

    `wrong`: images whose predicted label set differs from the true one, highest loss
    first, at most `max_wrong` (-1: all). `correct`: up to `correct_shown` images whose
    set is right, lowest loss (most confident) first. Ties keep file order.
    """
    right = (apply_thresholds(probs, thresholds, never_empty)
             == np.asarray(labels, bool)).all(axis=1)
    losses = image_losses(labels, probs)
    wrong = [int(i) for i in np.argsort(-losses, kind="stable") if not right[i]]
    correct = [int(i) for i in np.argsort(losses, kind="stable") if right[i]][:correct_shown]
    shown = wrong if max_wrong < 0 else wrong[:max_wrong]
    return shown, correct, len(wrong)


def thumbnail_uri(path, size=THUMBNAIL_SIZE):
    """The image at `path` as a small JPEG data URI, decoded as training decodes it."""
    image = decode_image(path)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return _data_uri("image/jpeg", buffer.getvalue())


def _data_uri(mime, content):
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def _e(value):
    return html.escape(str(value))


def _number(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return f"{value:.{digits}f}"


def _table(header, rows, css=""):
    """An HTML table; cells are HTML already (escape data before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _card_link(model_card):
    """A link to the model card beside the page: a file of the run folder, not the web."""
    if not model_card:
        return ""
    return f'; the run\'s <a href="{_e(model_card)}">model card</a>'


def _run_section(run):
    data = [(_e(part), f"{count:,}") for part, count in run.sizes.items()]
    data.append(("classes", f"{len(run.class_names)}: {_e(', '.join(run.class_names))}"))
    flags = [(f"--{_e(name)}", _e(value)) for name, value in run.changed_flags]
    total = sum(run.stage_seconds.values())
    stages = [(_e(stage), f"{seconds:.1f}", f"{100 * seconds / total:.0f}%" if total else "")
              for stage, seconds in run.stage_seconds.items()]
    stages.append(("<b>total</b>", f"<b>{total:.1f}</b>", ""))
    return (
        '<section id="run"><h2>The run</h2>\n'
        f'<p>Module <b>{_e(run.module)}</b>: {_e(run.module_details)}</p>\n<div class="row">'
        f'<div><h3>Images</h3>{_table(["part", "images"], data)}</div>'
        f'<div><h3>Flags that differ from the defaults</h3>'
        f'{_table(["flag", "value"], flags) if flags else "<p>none</p>"}</div>'
        f'<div><h3>Time per stage</h3>{_table(["stage", "seconds", "share"], stages, "num")}'
        '<p class="note">Before this page was written.</p></div>'
        "</div></section>")


def _measures_section(class_names, measures):
    parts = [p for p in ("test", "validation") if p in measures]
    if "test" not in measures:
        return ('<section id="measures"><h2>Test measures</h2>'
                "<p>The test part is empty: no test measures.</p></section>")
    test = measures["test"]
    summary = [(name, *(_number(measures[p][key]) for p in parts),
                intervals.summary_cell(test, key)) for key, name in SUMMARY_MEASURES]
    per_class = [(_e(name), _number(test["thresholds"][c]),
                  *(intervals.class_cell(test, key, c)
                    for key in ("average_precision", "precision", "recall", "f1")),
                  f"{test['support'][c]:,}")
                 for c, name in enumerate(class_names)]
    return (
        '<section id="measures"><h2>Test measures</h2>\n'
        f"<p>{test['num_instances']:,} test images. A label is predicted when its probability "
        "is at least its class's threshold, chosen to maximise F1 on out-of-fold predictions "
        "of the training images.</p>\n<div class=\"row\">"
        f'<div>{_table(["measure", *parts, intervals.HEADER], summary, "num")}</div>'
        f'<div>{_table(PER_CLASS_HEADER, per_class, "num")}'
        f"</div></div>{intervals.note(measures)}{_exports_table(measures.get('exports'))}</section>")


def _exports_table(exports):
    """The TFLite exports (--quantize) against float on the test part; "" for none."""
    if not exports:
        return ""
    rows = [(_e(name) + (" (left out)" if m.get("left_out") else ""),
             f"{m['size_bytes'] / 1e6:.1f} MB", _number(m["max_difference"]),
             _number(m["mean_average_precision"]), _number(m["label_accuracy"]),
             _number(m["exact_match"]), f"{m['images_seconds']:.1f}")
            for name, m in exports.items()]
    return ("<h3>TFLite exports</h3>" + _table(
        ["export", "size", "max difference", "mAP", "label accuracy", "exact match",
         f"seconds for {next(iter(exports.values()))['images']} photos"], rows, "num") +
        '<p class="note">Each with its own thresholds; a copy that loses more than the '
        "tolerance to float is left out (docs/mobile.md#smaller-models).</p>")


def _curves_section(run, measures, test):
    out = ['<section id="curves"><h2>Curves</h2><h3>Training</h3>']
    if run.history:
        png = plots.training_curve(run.history, measures["best_step"])
        out.append(f'<img class="plot" src="{_data_uri("image/png", png)}" '
                   'alt="training loss and validation mAP by step">')
    else:
        out.append("<p>No evaluation ran in this process (a resumed run past its last step).</p>")
    out.append("<h3>Precision-recall on the test part, chosen thresholds marked</h3>")
    if "test" not in measures:
        out.append("<p>The test part is empty.</p>")
    else:
        out.append('<div class="row">')
        for c, name in enumerate(run.class_names):
            out.append(_pr_curve(name, c, test, measures["test"]))
        out.append("</div>")
    out.append("</section>")
    return "\n".join(out)


def _pr_curve(name, c, test, measured):
    if not test.labels[:, c].any():
        return f'<p class="note">{_e(name)}: no positive test image, no curve.</p>'
    precision, recall, _ = metrics.precision_recall_curve(test.labels[:, c], test.probs[:, c])
    png = plots.precision_recall(
        name, precision, recall, measured["average_precision"][c],
        (measured["thresholds"][c], measured["precision"][c], measured["recall"][c]))
    return (f'<img class="pr" src="{_data_uri("image/png", png)}" '
            f'alt="precision-recall curve of {_e(name)}">')


def _gallery_sections(class_names, test, max_wrong, correct_shown):
    if not len(test.paths):
        return ['<section id="wrong"><h2>Wrong label sets</h2><p>The test part is empty.</p>'
                '</section>', '<section id="correct"><h2>Confident and right</h2></section>']
    wrong, correct, wrong_count = pick_examples(test.labels, test.probs, test.thresholds,
                                                max_wrong, correct_shown, test.never_empty)
    losses = image_losses(test.labels, test.probs)
    shown = ("all of them" if len(wrong) == wrong_count
             else f"the {len(wrong):,} with the highest loss")
    cards = "".join(_card(i, class_names, test, losses[i]) for i in wrong)
    right = "".join(_card(i, class_names, test, losses[i]) for i in correct)
    legend = ('<p class="note">Each label: its probability (bar), its threshold, and whether '
              'it is <span class="tp">true and predicted</span>, <span class="fn">true but '
              'missed</span>, <span class="fp">predicted but false</span> or neither. Loss: the '
              "mean binary cross-entropy over the labels.</p>")
    return [
        '<section id="wrong"><h2>Wrong label sets</h2>\n'
        f"<p>{wrong_count:,} of {len(test.paths):,} test images have a predicted label set that "
        f"differs from the true one; shown: {shown}, worst first.</p>{legend}"
        f'<div class="cards">{cards}</div></section>',
        '<section id="correct"><h2>Confident and right</h2>\n'
        f"<p>The {len(correct)} test images with a right label set and the lowest loss, for "
        f'contrast.</p><div class="cards">{right}</div></section>',
    ]


def _card(i, class_names, test, loss):
    truth = test.labels[i].astype(bool)
    predicted = apply_thresholds(test.probs[i:i + 1], test.thresholds, test.never_empty)[0]
    path = test.paths[i]
    return (f'<figure class="card"><img src="{thumbnail_uri(path)}" alt="{_e(path)}">'
            f'<figcaption><div class="file" title="{_e(path)}">{_e(_basename(path))}</div>'
            f"<div>true: {_names(class_names, truth)}</div>"
            f"<div>predicted: {_names(class_names, predicted)}</div>"
            f'<div class="note">loss {loss:.3f}</div>'
            f"{_probability_table(class_names, truth, predicted, test.probs[i], test.thresholds)}"
            "</figcaption></figure>")


def _probability_table(class_names, truth, predicted, probs, thresholds):
    rows = []
    for c, name in enumerate(class_names):
        kind = {(True, True): "tp", (True, False): "fn", (False, True): "fp"}.get(
            (bool(truth[c]), bool(predicted[c])), "tn")
        p = float(probs[c])
        rows.append(f'<tr class="{kind}"><td>{_e(name)}</td>'
                    f'<td class="bar"><span style="width:{100 * p:.0f}%"></span></td>'
                    f"<td>{p:.3f}</td><td>&ge;{thresholds[c]:.2f}</td></tr>")
    return f'<table class="probs">{"".join(rows)}</table>'


def _issues_section(class_names, issues, thresholds, max_shown, never_empty=False):
    shown = issues if max_shown < 0 else issues[:max_shown]
    how_many = "all of them" if len(shown) == len(issues) else f"the {len(shown):,} worst"
    cards = "".join(_issue_card(issue, class_names, thresholds, never_empty) for issue in shown)
    return (
        '<section id="labels"><h2>Labels that look wrong</h2>\n'
        f"<p>{len(issues):,} images whose given labels the model confidently contradicts "
        "(confident learning on held-out predictions: out-of-fold ones for the training "
        "images, the final model's for the test part), listed in label_issues.csv; shown: "
        f"{how_many}, worst first. Probabilities are coloured against the given labels, "
        "as above; the score is the label quality, from 0 (surely wrong) to 1.</p>"
        f'<div class="cards">{cards}</div></section>')


def _issue_card(issue, class_names, thresholds, never_empty):
    # The run's own rule: where it never predicts an empty set, no card shows one.
    predicted = apply_thresholds(issue.probs[None], thresholds, never_empty)[0]
    table = _probability_table(class_names, issue.given, predicted, issue.probs, thresholds)
    return (f'<figure class="card"><img src="{thumbnail_uri(issue.image)}" '
            f'alt="{_e(issue.image)}"><figcaption>'
            f'<div class="file" title="{_e(issue.image)}">{_e(_basename(issue.image))} '
            f"({_e(issue.part)})</div>"
            f"<div>given: {_names(class_names, issue.given)}</div>"
            f"<div>predicted: {_names(class_names, predicted)}</div>"
            f"<div>add: {_names(class_names, issue.add)}, remove: "
            f"{_names(class_names, issue.remove)}</div>"
            f'<div class="note">score {issue.score:.3f}</div>{table}</figcaption></figure>')


def _names(class_names, flags):
    """A label set for people: each name in a box of its own, so that no separator can be
    mistaken for part of a name (`black & white`, `sun, set`)."""
    names = [n for n, f in zip(class_names, flags) if f]
    return "".join(f'<b class="label">{_e(n)}</b>' for n in names) or "(none)"


def _basename(path):
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #222; max-width: 1400px; }
h1 { margin: 0 0 4px; } h2 { border-bottom: 1px solid #ccc; margin-top: 28px; }
h3 { margin: 12px 0 6px; font-size: 15px; }
.note { color: #666; font-size: 12px; }
.label { border: 1px solid #bbb; border-radius: 3px; padding: 0 3px; margin-right: 3px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
table.num td + td { text-align: right; font-variant-numeric: tabular-nums; }
img.plot { max-width: 100%; } img.pr { width: 317px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { margin: 0; width: 250px; border: 1px solid #ddd; border-radius: 4px; padding: 6px;
        font-size: 12px; }
.card img { display: block; margin: 0 auto 4px; max-width: 128px; max-height: 128px; }
.file { font-family: monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.probs { width: 100%; } table.probs td { padding: 0 3px; border: 0; }
td.bar { width: 70px; } td.bar span { display: block; height: 8px; background: #9ab; }
.tp, .tp td { color: #1a7f37; font-weight: 600; }
.fn, .fn td, .fp, .fp td { color: #c62828; font-weight: 600; }
.tn td { color: #777; }
tr.tp td.bar span { background: #1a7f37; }
tr.fn td.bar span, tr.fp td.bar span { background: #c62828; }
"""
