"""The model card: one short document that travels with the model (`model_card.md`).

The run folder holds the files, but a user handing the model on needs to say in one place
what it was trained on, how well it did (with the spread of each measure), at which
thresholds, on what terms (the data's, each module's weights'), for what use and with
which limits. The card is written from the run's own numbers (metrics.json, the parts'
counts, label_issues.csv), short enough to read in a minute, in Markdown a user edits
afterwards: the manifest records the bytes the run wrote, but no reader checks the card,
so editing it never makes the run folder "mixed".
"""

import dataclasses
import datetime
import os

from multilabel.base import atomic, storage
from multilabel.base.errors import UserError
from multilabel.features.backbones import module_builder

# A class with fewer training positives than this is named among the known limits: its
# threshold and AP rest on few examples (its test interval says how few).
FEW_POSITIVES = 30
# The demo data's terms, as the LAMDA page states them (DATASET/README.md quotes it).
LAMDA_TERMS = ("LAMDA \"MIML image data\" (Nanjing University, "
               "<http://www.lamda.nju.edu.cn/data_MIMLimage.ashx>): free for academic purposes "
               "only, at one's own risk; an acknowledgement or citation is required (Zhou & "
               "Zhang, NIPS 2006; Zhou, Zhang, Huang & Li, Artificial Intelligence 176, 2012); "
               "any other use needs Prof. Zhi-Hua Zhou's permission.")
_PARTS = ("train", "validation", "test")
SUMMARY = (("label_accuracy", "label accuracy"), ("exact_match", "exact match"),
           ("micro_f1", "micro F1"), ("macro_f1", "macro F1"),
           ("mean_average_precision", "mAP"),
           ("label_ranking_average_precision", "average precision (example-based)"),
           ("expected_calibration_error", "calibration error (ECE)"))


@dataclasses.dataclass(frozen=True)
class Card:
    """What the card says, gathered by the run."""

    image_dir: str
    class_names: tuple
    positives: dict  # part name -> positives per class (list), in class order
    sizes: dict  # part name -> images
    modules: tuple  # (handle, description, weights licence or None) per member
    recipe: tuple  # (option, value) pairs that differ from the defaults
    report: dict  # metrics.json's content
    issues: tuple  # label_issues.Issue, worst first
    outputs: tuple  # the files of the run, by name
    # The near-duplicate check's counts (evaluation.near_duplicates: leaked_test,
    # within_training, different_labels); None where the run did not check.
    near_duplicates: dict | None = None


def module_entry(handle, path):
    """`(handle, description, weights licence)` of a module, from the provenance file the
    project writes beside the modules it builds (None where it has none)."""
    provenance = module_builder.read_provenance(path)
    return (handle, provenance.get("description"),
            module_builder.weights_licence(path, provenance))


def write(path, card):
    """Write the card atomically at `path`."""
    atomic.write_text(path, render(card))


def render(card):
    """The card's Markdown text."""
    report = card.report
    names = ", ".join(card.class_names)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"# Model card: multi-label classifier of {names}",
        "",
        f"Written by retrain.py on {when} (run {report.get('run_id', '-')}) from the run's "
        "own numbers; edit it freely (no reader of the run folder checks it against the "
        "manifest). A new run into this folder writes a new one.",
        "",
        *_data(card),
        *_model(card),
        *_measures(card),
        *_thresholds(card),
        "## Intended use",
        "",
        f"Tagging photos like the training photos with any of {names}, where a wrong tag "
        "costs little and a person can check the uncertain ones (the report page's wrong "
        "label sets show what kind of mistakes to expect). Not for decisions about people, "
        "nor for photos unlike the training data (other cameras, other subjects, drawings), "
        "where the measures above say nothing.",
        "",
        *_limits(card),
    ]) + "\n"


def _data(card):
    parts = [p for p in _PARTS if p in card.sizes]
    header = "| class | " + " | ".join(f"{p} ({card.sizes[p]:,} images)" for p in parts) + " |"
    rows = [f"| {name} | " + " | ".join(f"{card.positives[p][c]:,}" for p in parts) + " |"
            for c, name in enumerate(card.class_names)]
    by_part = {}
    for issue in card.issues:
        by_part[issue.part] = by_part.get(issue.part, 0) + 1
    checked = card.sizes.get("train", 0) + card.sizes.get("validation", 0)
    issues = (f"{len(card.issues):,} images whose given labels the model confidently "
              "contradicts (label_issues.csv, worst first): "
              + ", ".join(f"{n:,} in {part}" for part, n in sorted(
                  by_part.items(), key=lambda item: _PARTS.index(item[0])
                  if item[0] in _PARTS else len(_PARTS)))
              if card.issues else "none found")
    if card.issues and checked:
        issues += f" ({by_part.get('train', 0) / checked:.1%} of the training images)"
    return [
        "## Data", "",
        f"- Folder: `{card.image_dir}`; {len(card.class_names)} classes. Positives per class "
        "in each part:", "",
        header, "| --- |" + " --- |" * len(parts), *rows, "",
        f"- Labels that look wrong: {issues}.",
        f"- Near-duplicates: {_near_duplicates(card.near_duplicates)}.",
        f"- Terms of the data: {_data_terms(card.image_dir)}",
        "",
    ]


def _data_terms(image_dir):
    try:  # through the one regular-file check: a FIFO there would hang the run's end
        text = storage.read_text(os.path.join(image_dir, "README.md"))
    except UserError:
        text = ""
    if "lamda.nju.edu.cn" in text:
        return LAMDA_TERMS
    return ("*state them here*: who owns the photos and the labels, and what use they "
            "allow (the run cannot know).")


def _model(card):
    lines = ["## Model", ""]
    for handle, description, licence in card.modules:
        lines.append(f"- Module `{handle}`{': ' + description if description else ''}. "
                     f"Terms of its weights: {licence or 'not recorded; see where it came from'}.")
    calibration = card.report.get("calibration", {})
    lines += [
        "- Head: one sigmoid layer on the module's pooled features, trained by retrain.py "
        f"(kept step {card.report.get('best_step', '-')}"
        + (", then fine-tuned" if "phase_1" in card.report else "") + "); "
        f"calibration: {calibration.get('method', 'none')}.",
        "- Options that differ from the defaults: "
        + (", ".join(f"`--{name} {_value(value)}`" for name, value in card.recipe)
           or "none") + ".",
        "- Files: " + ", ".join(f"`{name}`" for name in card.outputs) + ".",
        "",
    ]
    return lines


def _value(value):
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _interval(test, key, c=None):
    interval = test.get("intervals", {}).get(key)
    if interval is not None and c is not None:
        interval = interval[c]
    return "-" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def _number(value):
    return "-" if value is None else f"{value:.4f}"


def _measures(card):
    test = card.report.get("test")
    if test is None:
        return ["## Test measures", "", "The test part was empty: no measures.", ""]
    lines = ["## Test measures", "",
             f"On {test['num_instances']:,} test images no training saw; 95 % intervals from "
             "a bootstrap over those images (the spread another draw of them would give).", "",
             "| measure | value | 95 % interval |", "| --- | --- | --- |"]
    lines += [f"| {name} | {_number(test.get(key))} | {_interval(test, key)} |"
              for key, name in SUMMARY if key in test]
    lines += ["", "| class | AP | F1 | F1's 95 % interval | test positives |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {_number(test['average_precision'][c])} | {test['f1'][c]:.4f} | "
              f"{_interval(test, 'f1', c)} | {test['support'][c]:,} |"
              for c, name in enumerate(card.class_names)]
    calibration = card.report.get("calibration", {})
    if "test_ece_before" in calibration:
        lines += ["", f"Calibration ({calibration['method']}, fitted on "
                  f"{calibration['images']:,} {calibration['fitted_on']} predictions): test "
                  f"ECE {calibration['test_ece_before']:.4f} before, "
                  f"{calibration['test_ece_after']:.4f} after."]
    lines.append("")
    return lines


def _thresholds(card):
    report = card.report
    rule = ("an image under every threshold gets the one class nearest its threshold "
            "(every training image has a label)" if report.get("never_empty")
            else "an image under every threshold gets no label")
    return ["## Thresholds", "",
            "A class is predicted when its probability is at least its threshold (chosen to "
            "maximise F1 on out-of-fold predictions of the training images); " + rule + ": "
            + ", ".join(f"{name} {t:.3f}" for name, t in zip(card.class_names,
                                                            report.get("thresholds", ()))) + ".",
            ""]


def _limits(card):
    lines = ["## Known limits, from this run's numbers", ""]
    train = card.positives.get("train", ())
    few = [f"{name} ({train[c]} training positives)" for c, name in enumerate(card.class_names)
           if train and train[c] < FEW_POSITIVES]
    if few:
        lines.append(f"- Classes with few examples: {', '.join(few)}; their thresholds and "
                     "measures rest on little.")
    test = card.report.get("test")
    if test:
        worst = min(range(len(card.class_names)), key=lambda c: test["f1"][c])
        lines.append(f"- Weakest class: {card.class_names[worst]}, F1 {test['f1'][worst]:.3f} "
                     f"({_interval(test, 'f1', worst)}).")
        low, high = (test.get("intervals", {}).get("exact_match") or (None, None))
        if low is not None:
            lines.append(f"- Exact match {test['exact_match']:.3f} could be anywhere from "
                         f"{low:.3f} to {high:.3f} on another draw of {test['num_instances']:,} "
                         "test images: a gain smaller than that between two runs needs a "
                         "paired comparison before it is believed.")
    checked = card.sizes.get("train", 0) + card.sizes.get("validation", 0)
    wrong = sum(issue.part == "train" for issue in card.issues)
    if checked:
        lines.append(f"- Label noise: {wrong / checked:.1%} of the training images' labels "
                     "look wrong to the model; it learned from them as given.")
    lines.append("")
    return lines


def _near_duplicates(counts):
    """The data section's line on near-duplicate photos (near_duplicates.csv)."""
    if counts is None:
        return "not checked by this run"
    return (f"{counts['leaked_test']:,} test images with a near-duplicate in training (their "
            f"measures may be too good), {counts['within_training']:,} pairs within training, "
            f"{counts['different_labels']:,} pairs labelled differently (near_duplicates.csv)")
