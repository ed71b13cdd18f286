"""Report formats of label_image.py, on hand-made probability vectors."""

import csv
import io
import json

import numpy as np
import pytest

from multilabel.data import csv_labels
from multilabel.labelling.label_report import Report

LABELS = ("desert", "sea", "sunset")
THRESHOLDS = np.array([0.5, 0.4, 0.6])
PROBS = np.array([0.1, 0.4, 0.75], np.float32)  # sea exactly at its threshold


def test_text_record():
    text = Report("text", LABELS, THRESHOLDS).record("x.jpg", PROBS)
    # Every line says what it holds: no unlabelled numpy row first.
    assert text == ("sunset  0.75000  (threshold 0.6)\n"
                    "sea     0.40000  (threshold 0.4)\n"
                    "desert  0.10000  (threshold 0.5)\n"
                    "predicted: sea, sunset\n")


def test_text_names_images_and_limits_lines_to_top_k():
    text = Report("text", LABELS, THRESHOLDS, top_k=1, name_images=True).record("x y.jpg", PROBS)
    assert text.splitlines() == ["==> x y.jpg <==",
                                 "sunset  0.75000  (threshold 0.6)",
                                 "predicted: sea, sunset", ""]


def test_text_with_nothing_predicted():
    text = Report("text", LABELS, np.ones(3)).record("x.jpg", PROBS)
    assert text.splitlines()[-1] == "predicted: (none)"


def test_json_record_keeps_float32_values_exactly():
    probs = np.array([1 / 3, 1e-7, 0.999999], np.float32)
    line = Report("json", LABELS, THRESHOLDS).record("é.jpg", probs)
    record = json.loads(line)
    assert line.endswith("}\n") and line.count("\n") == 1
    assert record == {"image": "é.jpg", "probabilities": record["probabilities"],
                      "labels": list(LABELS), "predicted": ["sunset"]}
    assert np.array_equal(np.array(record["probabilities"], np.float32), probs)


def test_csv_header_and_quoted_row():
    report = Report("csv", LABELS, THRESHOLDS)
    rows = list(csv.reader(io.StringIO(report.header() + report.record('a,"b".jpg', PROBS))))
    assert rows == [["image", *LABELS, "predicted"],
                    ['a,"b".jpg', "0.1", "0.4", "0.75", "sea\tsunset"]]


def test_text_and_json_have_no_header():
    assert Report("text", LABELS, THRESHOLDS).header() == ""
    assert Report("json", LABELS, THRESHOLDS).header() == ""


def test_wrong_number_of_probabilities_is_refused():
    with pytest.raises(ValueError, match="expected 3 probabilities"):
        Report("json", LABELS, THRESHOLDS).record("x.jpg", np.zeros(2))


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        Report("xml", LABELS, THRESHOLDS)


def test_csv_predicted_column_reads_back_into_the_same_classes():
    """label_image.py's CSV, given to data_generation.py as it is, gives back the model's
    classes and each image's predicted set, whatever the names hold (issue 32)."""
    labels = ("black & white", "sun set", "désert")
    report = Report("csv", labels, np.array([0.5, 0.5, 0.5]))
    text = report.header() + "".join(
        report.record(name, probs) for name, probs in (
            ("a.jpg", [0.9, 0.8, 0.1]), ("b.jpg", [0.1, 0.2, 0.7]), ("c.jpg", [0.1, 0.1, 0.1])))
    table = csv_labels.parse_csv_labels(io.StringIO(text))
    assert table.class_names == labels
    assert [(r.name, set(r.labels)) for r in table.rows] == [
        ("a.jpg", {"black & white", "sun set"}), ("b.jpg", {"désert"}), ("c.jpg", set())]
    # Only the image and predicted columns, as a user might cut them out: the same sets.
    two = "".join(",".join(row[:1] + row[-1:]) + "\n" for row in csv.reader(io.StringIO(text)))
    table = csv_labels.parse_csv_labels(io.StringIO(two))
    assert table.class_names == ("black & white", "désert", "sun set")  # sorted: no header
    assert set(table.rows[0].labels) == {"black & white", "sun set"}
