import io

import pytest

from multilabel.data import listfile
from multilabel.base.errors import UserError
from multilabel.data.listfile import Entry


def read(text, num_classes=None):
    return listfile.read_list(io.StringIO(text, newline=""), "x.lst", num_classes)


def error_of(text, num_classes=None):
    with pytest.raises(UserError) as info:
        read(text, num_classes)
    return info.value


def test_reads_entries_in_file_order():
    entries = read("7\t1\t0\timages/7.jpg\n2\t0\t1\timages/sub/2.png\n")
    assert entries == [Entry(7, (1, 0), "images/7.jpg", 1), Entry(2, (0, 1), "images/sub/2.png", 2)]


def test_accepts_bom_crlf_trailing_tab_and_blank_lines_at_the_end():
    text = "\ufeff1\t1\t0\timages/1.jpg\t\r\n2\t0\t1\timages/2.jpg\t\r\n\r\n\n"
    assert [(e.index, e.flags, e.path) for e in read(text, num_classes=2)] == [
        (1, (1, 0), "images/1.jpg"), (2, (0, 1), "images/2.jpg")]


@pytest.mark.parametrize("text, num_classes, line, words", [
    ("1\t1\t0\ta.jpg\n2\t1\t0\t1\tb.jpg\n", None, 2, "3 flags, expected 2"),
    ("1\t1\t0\ta.jpg\n", 3, 1, "2 flags, expected 3"),
    ("1\t1\t2\ta.jpg\n", None, 1, "'2' is not 0 or 1"),
    ("1\t1\t-1\ta.jpg\n", None, 1, "'-1' is not 0 or 1"),
    ("one\t1\ta.jpg\n", None, 1, "not a non-negative integer"),
    ("1.5\t1\ta.jpg\n", None, 1, "not a non-negative integer"),
    ("1\t1\ta.jpg\n2\t0\tb.jpg\n1\t1\tc.jpg\n", None, 3, "duplicate index 1 (first on line 1)"),
    ("1\t1\ta.jpg\n2\t0\ta.jpg\n", None, 2, "duplicate image a.jpg"),
    ("1\t1\t/etc/a.jpg\n", None, 1, "absolute"),
    ("1\t1\tC:/a.jpg\n", None, 1, "absolute"),
    ("1\t1\timages/../../a.jpg\n", None, 1, "leaves the dataset folder"),
    ("1\t1\timages\\a.jpg\n", None, 1, "backslash"),
    ("1\t1\ta.jpg\n2\timages/b.jpg\n", None, 2, "got 2 field(s)"),
])
def test_rejects_bad_lines_naming_file_and_line(text, num_classes, line, words):
    error = error_of(text, num_classes)
    assert (error.path, error.line) == ("x.lst", line)
    assert words in str(error)
    assert str(error).startswith(f"x.lst:{line}: ")


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff\r\n"])
def test_rejects_an_empty_list(text):
    assert str(error_of(text)) == "x.lst: the list has no entries"


def test_write_then_read_round_trips(tmp_path):
    entries = [Entry(3, (0, 1, 1), "images/3.jpg", 1), Entry(1, (1, 0, 0), "images/1.jpg", 2)]
    path = tmp_path / listfile.FULL_LIST
    listfile.write_list_file(path, entries)
    assert path.read_text() == "3\t0\t1\t1\timages/3.jpg\n1\t1\t0\t0\timages/1.jpg\n"
    assert listfile.read_list_file(path, num_classes=3) == entries


def test_read_list_file_reports_a_missing_file(tmp_path):
    with pytest.raises(UserError, match="list file not found"):
        listfile.read_list_file(tmp_path / "none.lst")


@pytest.mark.parametrize("read", [listfile.read_list_file, listfile.read_class_names])
def test_a_folder_or_a_path_through_a_file_is_a_user_error(tmp_path, read):
    with pytest.raises(UserError, match="is a folder, not a (list|class names) file"):
        read(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot read the (list|class names) file: Not a directory"):
        read(tmp_path / "file" / "x.lst")


def test_image_path_joins_inside_the_dataset_folder(tmp_path):
    entry = Entry(1, (1,), "images/a.jpg", 1)
    assert listfile.image_path(tmp_path, entry) == str(tmp_path / "images" / "a.jpg")
    with pytest.raises(UserError, match="leaves the dataset folder"):
        listfile.image_path(tmp_path, Entry(1, (1,), "../a.jpg", 4))


def test_class_names_round_trip(tmp_path):
    path = tmp_path / listfile.CLASS_NAMES_FILE
    listfile.write_class_names(path, ["desert", "sea view"])
    assert path.read_text() == "desert\nsea view\n"
    assert listfile.read_class_names(path) == ["desert", "sea view"]


@pytest.mark.parametrize("names, words", [
    (["a", "a"], "appears twice"), (["a", " "], "is empty"), (["a\nb"], "line break")])
def test_rejects_bad_class_names(tmp_path, names, words):
    with pytest.raises(UserError, match=words):
        listfile.write_class_names(tmp_path / "names.txt", names)
    assert not (tmp_path / "names.txt").exists()
