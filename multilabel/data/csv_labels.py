"""Read a CSV label file: one row per image, the image named in the first column.

Two layouts, told apart by the number of columns (a header line is required):

- two columns, `image,tags` (Kaggle's Planet data, fastai's `ImageDataLoaders.from_csv`):
  the second column holds the image's labels separated by `delimiter` (a space by
  default); the header's names are not used. A row without any label is an error: an
  empty cell cannot tell "no label" from a label that was never filled in.
- more columns, `image,class_1,class_2,...` (one-hot): one column per class, `1` present,
  `0` or `-1` absent; the class names are the header's. A row of only absent flags is an
  image with no label, said explicitly.

Class names come out sorted unless `class_names` gives their order; then a tag or a
column not among them is an error. Every error is a `UserError` naming the file and the
line. Nothing here knows about image files: `label_formats` pairs the names with them
(and checks that two rows naming one image agree).
No TensorFlow here.
"""

import csv
import dataclasses

from multilabel.base.errors import UserError, file_error

_PRESENT = "1"
_ABSENT = ("0", "-1")


@dataclasses.dataclass(frozen=True)
class NamedLabels:
    """One row: the image name as written, its labels, and the line the row ends on."""

    name: str
    labels: frozenset
    line: int


@dataclasses.dataclass(frozen=True)
class LabelTable:
    class_names: tuple  # output order
    rows: tuple  # NamedLabels, in file order
    layout: str  # "tags" or "one-hot", for messages


def read_csv_labels(path, delimiter=" ", class_names=()):
    """The `LabelTable` of the CSV file at `path` (see `parse_csv_labels`)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return parse_csv_labels(f, path, delimiter, class_names)
    except OSError as e:
        raise file_error(e, path, "labels file") from e
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text: {e}", path) from e


def parse_csv_labels(lines, source="<stream>", delimiter=" ", class_names=()):
    """Parse CSV lines (any iterable of str, header first) into a `LabelTable`."""
    reader = csv.reader(lines)
    try:
        rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader if row]
    except csv.Error as e:
        raise UserError(f"not a readable CSV file: {e}", source, reader.line_num) from e
    if not rows:
        raise UserError("empty CSV file; expected a header line, then one row per image", source)
    (header_line, header), body = rows[0], rows[1:]
    if len(header) < 2:
        raise UserError("one column; expected a header such as image_name,tags (the labels "
                        "separated by spaces) or image,class_1,class_2,... (1/0 per class)",
                        source, header_line)
    if not body:
        raise UserError("no rows after the header", source, header_line)
    for line, cells in body:
        if len(cells) != len(header):
            raise UserError(f"{len(cells)} columns, but the header has {len(header)}",
                            source, line)
        if not cells[0]:
            raise UserError("empty image name in the first column", source, line)
    if len(header) == 2:
        return _tags(body, source, delimiter, class_names)
    return _one_hot(header_line, header, body, source, class_names)


def _tags(body, source, delimiter, class_names):
    rows = []
    for line, (name, cell) in body:
        tags = frozenset(t.strip() for t in cell.split(delimiter) if t.strip())
        if not tags:
            raise UserError(f"{name} has no label; every row of an image,tags file needs "
                            "one (a one-hot CSV can say 'no label' with a row of 0s)",
                            source, line)
        if class_names:
            unknown = sorted(tags - set(class_names))
            if unknown:
                raise UserError(f"label {unknown[0]!r} is not among --class_names "
                                f"({','.join(class_names)})", source, line)
        rows.append(NamedLabels(name, tags, line))
    names = tuple(class_names) or tuple(sorted(set().union(*(r.labels for r in rows))))
    return LabelTable(names, tuple(rows), "tags")


def _one_hot(header_line, header, body, source, class_names):
    columns = header[1:]
    if all(c in (_PRESENT, *_ABSENT) for c in columns):
        raise UserError("the first line must be a header naming the classes, not flags",
                        source, header_line)
    for i, name in enumerate(columns):
        if not name:
            raise UserError(f"column {i + 2} of the header has no class name", source,
                            header_line)
        if name in columns[:i]:
            raise UserError(f"class {name!r} is named by two columns", source, header_line)
    if class_names:
        unknown = [c for c in columns if c not in class_names]
        if unknown:
            raise UserError(f"column {unknown[0]!r} is not among --class_names "
                            f"({','.join(class_names)})", source, header_line)
        absent = [c for c in class_names if c not in columns]
        if absent:
            raise UserError(f"no column for class {absent[0]!r} of --class_names", source,
                            header_line)
    rows = []
    for line, (name, *flags) in body:
        for column, flag in zip(columns, flags):
            if flag not in (_PRESENT, *_ABSENT):
                raise UserError(f"{column!r} is {flag!r}, not 1 (present) or 0/-1 (absent)",
                                source, line)
        rows.append(NamedLabels(name, frozenset(c for c, f in zip(columns, flags)
                                                if f == _PRESENT), line))
    return LabelTable(tuple(class_names) or tuple(sorted(columns)), tuple(rows), "one-hot")
