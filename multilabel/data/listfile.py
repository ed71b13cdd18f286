"""The `.lst` list format shared by data_generation.py and retrain.py.

One image a line, fields separated by tabs:

    index<TAB>flag<TAB>...<TAB>flag<TAB>PATH

`index` is a non-negative integer, unique in the file; there is one flag per class, `1`
present and `0` absent; PATH is relative to the dataset folder, with forward slashes,
and may have subfolders: the user's own names (`images/12.jpg`,
`train-jpg/img_00042.jpg`, `images/sea/img_00042.jpg`). Reading forgives what editors and older tools leave behind (a UTF-8 byte-order
mark, CRLF line ends, a trailing tab, blank lines) and rejects everything else with a
`UserError` naming the file and line, so that a bad list stops before any training.

This module must not import TensorFlow: the data step and the tests use it alone.
"""

import dataclasses
import io
import logging
import os
import posixpath
import re
import unicodedata

from multilabel.base import atomic, storage
from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)

TRAIN_LIST = "dataset_train.lst"
TEST_LIST = "dataset_test.lst"
FULL_LIST = "dataset.lst"
CLASS_NAMES_FILE = "class_names.txt"

_INDEX = re.compile(r"[0-9]+")
MAX_INDEX_DIGITS = 18  # below 2**63: an index fits any integer type
_FLAGS = {"0": 0, "1": 1}
_BOM = "\ufeff"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image of a list: its index, one 0/1 flag per class, its path and source line."""

    index: int
    flags: tuple
    path: str
    line: int


def check_path(path, source=None, line=None):
    """Raise `UserError` unless `path` is a relative posix path inside the dataset folder.

    Paths are kept as written, so they are checked as written: no absolute path (posix,
    Windows drive or UNC), no `..` component, no backslash (a Windows path would name a
    different file here), and nothing that would break the tab-separated line.
    """
    if not path:
        raise UserError("empty image path", source, line)
    if "\\" in path:
        raise UserError(f"image path {path!r} contains a backslash; use forward slashes", source, line)
    if any(c in path for c in "\t\r\n"):
        raise UserError(f"image path {path!r} contains a tab or line break", source, line)
    if "\0" in path:  # no file system has such a name; os.stat raises ValueError on it
        raise UserError(f"image path {path!r} contains a NUL byte", source, line)
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise UserError(f"image path {path!r} is absolute; it must be relative to the dataset folder",
                        source, line)
    if ".." in path.split("/"):
        raise UserError(f"image path {path!r} leaves the dataset folder", source, line)


def read_list(lines, source="<stream>", num_classes=None):
    """Parse list lines (any iterable of str) into a list of `Entry`, in file order.

    `num_classes`, when given, is the number of flags every line must have; otherwise
    the first line sets it. Raises `UserError(source, line)` on the first bad line and
    on a list without entries.
    """
    entries = []
    first_line_of_index = {}
    first_line_of_path = {}
    for number, text in enumerate(lines, start=1):
        if number == 1 and text.startswith(_BOM):
            text = text[len(_BOM):]
        # A trailing tab (older writers ended every field with one) and CR of CRLF files.
        text = text.rstrip("\r\n").rstrip("\t")
        if not text.strip():
            continue
        entry = _parse_line(text, source, number, num_classes)
        if num_classes is None:
            num_classes = len(entry.flags)
        if entry.index in first_line_of_index:
            raise UserError(f"duplicate index {entry.index} (first on line "
                            f"{first_line_of_index[entry.index]})", source, number)
        if entry.path in first_line_of_path:
            raise UserError(f"duplicate image {entry.path} (first on line "
                            f"{first_line_of_path[entry.path]})", source, number)
        first_line_of_index[entry.index] = number
        first_line_of_path[entry.path] = number
        entries.append(entry)
    if not entries:
        raise UserError("the list has no entries", source)
    return entries


def _parse_line(text, source, number, num_classes):
    fields = text.split("\t")
    if len(fields) < 3:
        raise UserError(f"expected index, flags and image path separated by tabs, got "
                        f"{len(fields)} field(s): {text!r}", source, number)
    index_text, flag_texts, path = fields[0], fields[1:-1], fields[-1]
    if not _INDEX.fullmatch(index_text):
        raise UserError(f"index {_clip(index_text)!r} is not a non-negative integer", source,
                        number)
    if len(index_text.lstrip("0")) > MAX_INDEX_DIGITS:
        # Python would refuse to read thousands of digits; no real list comes near.
        raise UserError(f"index {_clip(index_text)!r} has {len(index_text)} digits, more "
                        f"than the {MAX_INDEX_DIGITS} allowed", source, number)
    if num_classes is not None and len(flag_texts) != num_classes:
        raise UserError(f"{len(flag_texts)} flags, expected {num_classes} (one per class)",
                        source, number)
    bad = [f for f in flag_texts if f not in _FLAGS]
    if bad:
        raise UserError(f"flag {_clip(bad[0])!r} is not 0 or 1", source, number)
    check_path(path, source, number)
    return Entry(int(index_text), tuple(_FLAGS[f] for f in flag_texts), path, number)


def _clip(text, limit=40):
    """`text` cut to `limit` characters for a message, so a bad field stays readable."""
    return text if len(text) <= limit else text[:limit] + "..."


def read_list_file(path, num_classes=None):
    """Read and validate the list file at `path` (see `read_list`)."""
    text = storage.read_text(path, "list file")
    return read_list(io.StringIO(text, newline=""), source=path, num_classes=num_classes)


def format_entry(entry):
    """The list line for `entry`, newline included."""
    return "\t".join([str(entry.index), *map(str, entry.flags), entry.path]) + "\n"


def write_list_file(path, entries):
    """Atomically write `entries` to `path`, one line each, in the order given."""
    atomic.write_text(path, "".join(format_entry(e) for e in entries))


def image_path(dataset_dir, entry):
    """The file system path of `entry`'s image inside `dataset_dir`.

    The path is checked again here, so an `Entry` built by hand cannot reach outside
    the dataset folder either.
    """
    check_path(entry.path, line=entry.line)
    return os.path.join(os.fspath(dataset_dir), *posixpath.normpath(entry.path).split("/"))


def check_class_names(names, source=None, num_classes=None):
    """Raise `UserError` unless `names` are usable class names, one per class.

    A name may not be empty, repeat, or hold a control character: a line break (the file
    holds one a line), a tab (the separator of a label set, `base.label_sets`), NUL, an
    escape that would recolour a terminal.
    """
    if num_classes is not None and len(names) != num_classes:
        raise UserError(f"{len(names)} class names for {num_classes} classes", source)
    seen = set()
    for number, name in enumerate(names, start=1):
        if not name.strip():
            raise UserError(f"class name {number} is empty", source)
        if "\n" in name or "\r" in name:
            raise UserError(f"class name {name!r} contains a line break", source)
        control = [c for c in name if unicodedata.category(c) == "Cc"]
        if control:
            raise UserError(f"class name {name!r} contains the control character "
                            f"{control[0]!r}; class names are printed and written one a "
                            "line, a label set's names separated by tabs", source)
        if name in seen:
            raise UserError(f"class name {name!r} appears twice", source)
        seen.add(name)


def read_class_names(path):
    """The class names in `path`, one a line, in output order (blank lines ignored)."""
    text = storage.read_text(path, "class names file").removeprefix(_BOM)
    names = [line.strip() for line in io.StringIO(text, newline=None)]
    names = [n for n in names if n]
    if not names:
        raise UserError("no class names in the file", path)
    check_class_names(names, path)
    return names


def write_class_names(path, names):
    """Atomically write `names` to `path`, one a line."""
    check_class_names(names, path)
    atomic.write_text(path, "".join(f"{name}\n" for name in names))
