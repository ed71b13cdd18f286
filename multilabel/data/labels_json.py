"""Read `labels.json`, the label file of the original project.

Two layouts are accepted:

- one JSON list a line, line *i* (1-based) holding the flags of image *i*; this is the
  real file's layout, with no newline after the last line, so the file as a whole is
  not one JSON document;
- the whole file one JSON array of such lists (as `json.dump` writes it), item *i*
  belonging to image *i*, pretty-printed or not.

A flag is `1` (present) or `-1` / `0` (absent); flags come back as 0/1. Every error is a
`UserError` naming the file and the line where the bad list starts.
"""

import json
import logging
import sys

from multilabel.base import storage
from multilabel.base.errors import UserError, file_error

logger = logging.getLogger(__name__)

_ABSENT = (-1, 0)
_PRESENT = 1


def read_labels_file(path, num_classes=None):
    """The label rows of the file at `path`, see `parse_labels`."""
    try:
        with storage.open_file(path, "r", encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise file_error(e, path, "labels file") from e
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text: {e}", path) from e
    return parse_labels(text, source=path, num_classes=num_classes)


def parse_labels(text, source="<string>", num_classes=None):
    """Parse label text into a list of `(line, flags)` pairs, flags a tuple of 0/1.

    `line` is where the row starts in the text. `num_classes`, when given, is the
    number of flags every row must have; otherwise the first row sets it.
    """
    text = text.lstrip("\ufeff")
    start = len(text) - len(text.lstrip())
    # "[[" (spaces allowed between) opens one array of lists; "[1" opens a per-line file.
    after_bracket = text[start + 1:].lstrip()[:1]
    if text[start:start + 1] == "[" and after_bracket in ("[", "]"):
        rows = _parse_array(text, start, source)
    else:
        rows = _parse_lines(text, source)
    if not rows:
        raise UserError("no label rows", source)
    expected = num_classes if num_classes is not None else len(rows[0][1])
    return [(line, _flags(value, source, line, expected)) for line, value in rows]


def _parse_lines(text, source):
    rows = []
    blank = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            # Line i belongs to image i, so a blank line in the middle would shift all
            # later labels onto the wrong images.
            raise UserError("blank line between label lines (line i holds the labels of image i)",
                            source, blank)
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            raise UserError(f"not a JSON list: {e.msg} at column {e.colno}", source, number) from e
        except (ValueError, RecursionError) as e:
            raise UserError(f"not a JSON list: {_unreadable(e)}", source, number) from None
    return rows


def _parse_array(text, start, source):
    """Parse `[ item, item, ... ]` item by item, so each item keeps its line number."""
    decoder = json.JSONDecoder()
    rows = []
    pos = _skip_space(text, start + 1)
    if text[pos:pos + 1] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise UserError(f"bad JSON: {e.msg} at column {e.colno}", source, e.lineno) from e
            except (ValueError, RecursionError) as e:
                raise UserError(f"bad JSON: {_unreadable(e)}", source, _line_of(text, pos)) from None
            rows.append((_line_of(text, pos), value))
            pos = _skip_space(text, end)
            if text[pos:pos + 1] == ",":
                pos = _skip_space(text, pos + 1)
            elif text[pos:pos + 1] == "]":
                pos += 1
                break
            else:
                raise UserError("bad JSON: expected ',' or ']' after a label list",
                                source, _line_of(text, pos))
    if text[pos:].strip():
        raise UserError("bad JSON: extra text after the array", source,
                        _line_of(text, _skip_space(text, pos)))
    return rows


def _unreadable(error):
    """Why valid JSON syntax could not be read: Python refuses integers of more than
    `sys.get_int_max_str_digits()` digits (a ValueError) and runs out of stack on
    deeply nested lists (a RecursionError); neither is a label row."""
    if isinstance(error, RecursionError):
        return "lists nested too deeply"
    return f"a number with more than {sys.get_int_max_str_digits()} digits"


def _shown(value, limit=40):
    """`value` as JSON for a message, cut to `limit` characters."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _skip_space(text, pos):
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def _flags(value, source, line, expected):
    if not isinstance(value, list):
        raise UserError(f"expected a JSON list of flags, got {_shown(value)}", source, line)
    if len(value) != expected:
        raise UserError(f"{len(value)} flags, expected {expected} (one per class)", source, line)
    flags = []
    for flag in value:
        # bool is an int in Python (True == 1): refuse JSON true/false and 1.0 explicitly.
        if type(flag) is not int or flag not in (_PRESENT, *_ABSENT):
            raise UserError(f"flag {_shown(flag)} is not 1 (present) or -1/0 (absent)",
                            source, line)
        flags.append(1 if flag == _PRESENT else 0)
    return tuple(flags)
