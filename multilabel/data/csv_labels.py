"""Read a CSV label file: one row per image, the image named in the first column.

Three layouts, told apart by the cells, not by the number of columns (a header line is
required):

- one-hot, `image,class_1,class_2,...`: every cell after the first is `1` present, `0`
  or `-1` absent (a single class column too: `image,sea` with 1/0 is one class, `sea`);
  the class names are the header's, in the header's order. A row of only absent flags is
  an image with no label, said explicitly.
- label_image.py's output, `image,class_1,...,predicted` (probabilities, then the
  predicted set) or just `image,predicted`: the labels are the `predicted` column, its
  names separated by a tab (`base.label_sets`), so any class name reads back whole; the
  classes are the header's, in the model's order, and an empty set is an image with no
  label.
- two columns, `image,tags` (Kaggle's Planet data, fastai's `ImageDataLoaders.from_csv`):
  the second column holds the image's labels separated by `delimiter` (a space by
  default); the header's names are not used. A row without any label is an error: an
  empty cell cannot tell "no label" from a label that was never filled in.

Class names from tags come out in `label_sets.sorted_names` order unless `class_names`
gives their order; then a tag or a column not among them is an error. Every error is a
`UserError` naming the file and the line. Nothing here knows about image files:
`label_formats` pairs the names with them (and checks that two rows naming one image
agree).
No TensorFlow here.
"""

import csv
import dataclasses
import io

from multilabel.base import label_sets, storage
from multilabel.base.errors import UserError

_PRESENT = "1"
_ABSENT = ("0", "-1")
_FLAG_CELLS = (_PRESENT, *_ABSENT)
DEFAULT_DELIMITER = " "
# Inside a tag read with the default space, these show that the file separates its tags
# with something else ("mountains, sea" read as `mountains,` and `sea`).
_STRAY_SEPARATORS = ",;|"


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
    layout: str  # "tags", "one-hot" or "predicted", for messages


def read_csv_labels(path, delimiter=None, class_names=()):
    """The `LabelTable` of the CSV file at `path` (see `parse_csv_labels`), read through
    the one regular-file check (a FIFO or /dev/zero is refused, not read)."""
    text = storage.read_text(path, "labels file").removeprefix("\ufeff")
    return parse_csv_labels(io.StringIO(text, newline=""), path, delimiter, class_names)


def parse_csv_labels(lines, source="<stream>", delimiter=None, class_names=()):
    """Parse CSV lines (any iterable of str, header first) into a `LabelTable`.

    `delimiter` separates the tags of an `image,tags` cell (None: a space) and, when
    given, of label_image.py's `predicted` cell (None: a tab, as label_image.py writes).
    """
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
    # The layout is told by the cells: flags only is one-hot, whatever the column count.
    if all(cell in _FLAG_CELLS for _, cells in body for cell in cells[1:]):
        return _one_hot(header_line, header, body, source, class_names)
    if header[-1] == label_sets.PREDICTED_COLUMN:
        return _predicted(header, body, source, delimiter, class_names)
    if len(header) == 2:
        return _tags(body, source, delimiter, class_names)
    return _one_hot(header_line, header, body, source, class_names)  # names the bad cell


def _tags(body, source, delimiter, class_names):
    explicit = delimiter is not None
    delimiter = delimiter if explicit else DEFAULT_DELIMITER
    _check_delimiter(class_names, delimiter, source)
    rows = []
    for line, (name, cell) in body:
        tags = frozenset(label_sets.split(cell, delimiter))
        if not tags:
            raise UserError(f"{name} has no label; every row of an image,tags file needs "
                            "one (a one-hot CSV can say 'no label' with a row of 0s)",
                            source, line)
        if not explicit:
            _check_stray_separator(tags, source, line)
        _check_known(tags, class_names, "--class_names", source, line)
        rows.append(NamedLabels(name, tags, line))
    names = tuple(class_names) or label_sets.sorted_names(set().union(*(r.labels for r in rows)))
    return LabelTable(names, tuple(rows), "tags")


def _predicted(header, body, source, delimiter, class_names):
    """label_image.py's CSV: the `predicted` column, a set of names split on a tab; the
    classes are the probability columns' names (the model's order), if there are any."""
    delimiter = delimiter if delimiter is not None else label_sets.SEPARATOR
    columns = tuple(header[1:-1])
    _check_delimiter(class_names or columns, delimiter, source)
    known = tuple(class_names) or columns
    rows = []
    for line, cells in body:
        tags = frozenset(label_sets.split(cells[-1], delimiter))
        _check_known(tags, known, "--class_names" if class_names else "the header's columns",
                     source, line)
        rows.append(NamedLabels(cells[0], tags, line))
    names = known or label_sets.sorted_names(set().union(*(r.labels for r in rows)))
    if not names:
        raise UserError("no class: the predicted column is empty on every row and no "
                        "probability column names the classes", source)
    return LabelTable(tuple(names), tuple(rows), "predicted")


def _check_known(tags, known, what, source, line):
    if known:
        unknown = sorted(tags - set(known))
        if unknown:
            raise UserError(f"label {unknown[0]!r} is not among {what} ({','.join(known)})",
                            source, line)


def _check_delimiter(class_names, delimiter, source):
    """A class name holding the delimiter can never be read from a cell whole."""
    holding = [n for n in class_names if delimiter in n]
    if holding:
        raise UserError(f"class {holding[0]!r} contains the tag separator {delimiter!r}, so "
                        "its tags would be read as several labels; give another "
                        "--label_delim", source)


def _check_stray_separator(tags, source, line):
    """`"mountains, sea"` split on the default space gives `mountains,`: say which
    --label_delim the file seems to use instead of making a class `mountains,`."""
    for tag in sorted(tags):
        stray = [c for c in _STRAY_SEPARATORS if c in tag]
        if stray:
            raise UserError(f"label {tag!r} contains {stray[0]!r}: the labels look separated "
                            f"by {stray[0]!r}, not by spaces; give --label_delim "
                            f"{stray[0]!r} (or --label_delim ' ' where it belongs to a name)",
                            source, line)


def _one_hot(header_line, header, body, source, class_names):
    columns = header[1:]
    if all(c in _FLAG_CELLS for c in columns):
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
            if flag not in _FLAG_CELLS:
                raise UserError(f"{column!r} is {flag!r}, not 1 (present) or 0/-1 (absent)",
                                source, line)
        rows.append(NamedLabels(name, frozenset(c for c, f in zip(columns, flags)
                                                if f == _PRESENT), line))
    # The header's order, the order the user chose; --class_names overrides it.
    return LabelTable(tuple(class_names) or tuple(columns), tuple(rows), "one-hot")
