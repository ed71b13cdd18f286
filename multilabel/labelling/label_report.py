"""How label_image.py shows a labelled image: text for people, JSON lines or CSV for scripts.

The CSV has a column per label's probability, then `predicted`: the predicted label names
joined by a tab (`base.label_sets`, the one separator of every label set written), which
no class name holds, so data_generation.py reads the file back (`--labels predicted.csv`)
into the same classes, `black & white` and `sun set` included.

Probabilities are written in float32's shortest round-trip form (`str(np.float32)`),
so a script reading the JSON or CSV gets exactly the values the graph produced.
"""

import csv
import dataclasses
import io
import json

import numpy as np

from multilabel.base import label_sets
from multilabel.evaluation.thresholds import apply_thresholds

FORMATS = ("text", "json", "csv")
PREDICTED_COLUMN = label_sets.PREDICTED_COLUMN


@dataclasses.dataclass(frozen=True)
class Report:
    """The settings for showing results; `header()` once, then `record()` per image.

    `top_k` limits the per-label lines of the text format (the predicted set stays
    complete; JSON and CSV always carry every label). `name_images` puts a
    `==> path <==` line above each text record, as `head` does for several files.
    """

    format: str
    labels: tuple
    thresholds: np.ndarray  # [num_classes], predicted when probability >= threshold
    top_k: int | None = None
    name_images: bool = False
    never_empty: bool = False  # the top-margin rule (evaluation.thresholds)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")

    def header(self):
        """Text to write before the first record ('' when the format has none)."""
        if self.format == "csv":
            return _csv_line(["image", *self.labels, PREDICTED_COLUMN])
        return ""

    def record(self, image, probabilities):
        """The text for one labelled image, ending in a newline."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} probabilities, "
                             f"got shape {probabilities.shape}")
        if self.format == "csv":
            return _csv_line([image, *(_number(p) for p in probabilities),
                              label_sets.join(self.predicted(probabilities))])
        if self.format == "json":
            return json.dumps({
                "image": image,
                "probabilities": [float(_number(p)) for p in probabilities],
                "labels": list(self.labels),
                "predicted": self.predicted(probabilities),
            }) + "\n"
        return self._text(image, probabilities)

    def predicted(self, probabilities):
        """Names of the labels at or over their threshold, in label order (with
        `never_empty`, the top-margin label where none is)."""
        over = apply_thresholds(np.asarray(probabilities)[np.newaxis], self.thresholds,
                                self.never_empty)[0]
        return [name for name, chosen in zip(self.labels, over) if chosen]

    def _text(self, image, probabilities):
        lines = [f"==> {_escaped(image)} <=="] if self.name_images else []
        order = np.argsort(-probabilities, kind="stable")[:self.top_k]
        # Class names escaped as image names are: a run's labels file is input too.
        names = [_escaped(name) for name in self.labels]
        width = max(len(names[i]) for i in order)
        for i in order:
            lines.append(f"{names[i]:<{width}}  {probabilities[i]:.5f}"
                         f"  (threshold {self.thresholds[i]:.4g})")
        lines.append("predicted: " + (", ".join(map(_escaped, self.predicted(probabilities)))
                                      or "(none)"))
        if self.name_images:
            lines.append("")  # a blank line between images
        return "\n".join(lines) + "\n"


def _escaped(name):
    """`name` with its control characters written as escapes (`\\n`, `\\x1b`), so that a
    newline in a file name cannot break the text format's one-line-per-item layout or
    pass a terminal escape through; JSON escapes names itself, and CSV quotes them and
    writes their bytes as they are (a name that is not UTF-8 included), so that a script
    can open the file it names (docs/faults.md)."""
    return "".join(c if c.isprintable() else _escape(c) for c in name)


def _escape(char):
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    code = ord(char)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _number(value):
    return str(np.float32(value))


def _csv_line(fields):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()
