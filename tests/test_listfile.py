import dataclasses
import io
import re

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


def test_an_entry_is_frozen_and_hashable():
    entry = Entry(1, (1, 0), "images/1.jpg", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.path = "images/2.jpg"
    assert {entry, Entry(1, (1, 0), "images/1.jpg", 1)} == {entry}


@pytest.mark.parametrize("path, words", [
    ("", "empty image path"),
    ("images/a\nb.jpg", "contains a tab or line break"),
    ("images/a\rb.jpg", "contains a tab or line break"),
    ("images/a\tb.jpg", "contains a tab or line break"),
])
def test_check_path_rejects_what_no_list_line_can_hold(path, words):
    # read_list never passes these (a tab splits the fields, a line end the lines, a
    # trailing tab is dropped), but an Entry built by hand can hold them.
    with pytest.raises(UserError, match=f"^x.lst:4: .*{words}"):
        listfile.check_path(path, "x.lst", 4)
    with pytest.raises(UserError, match=words):
        listfile.image_path("/data", Entry(1, (1,), path, 4))


def test_a_line_break_inside_a_line_of_a_plain_list_is_refused():
    # A list of str is split by its caller, so a CR can sit inside one "line".
    with pytest.raises(UserError, match=r"^x.lst:2: image path 'a\\rb.jpg' contains"):
        listfile.read_list(["1\t1\tok.jpg\n", "2\t0\ta\rb.jpg\n"], "x.lst")


@pytest.mark.parametrize("read, data, where", [
    # Latin-1 é in line 2 after "2<TAB>0<TAB>images/" (11 bytes); a lone 0xff in line 3.
    (listfile.read_list_file, b"1\t1\timages/1.jpg\n2\t0\timages/\xe9t\xe9.jpg\n",
     "2: not UTF-8 text: byte 0xe9 at column 12 (invalid continuation byte)"),
    (listfile.read_class_names, b"desert\nmountains\n\xff\n",
     "3: not UTF-8 text: byte 0xff at column 1 (invalid start byte)"),
])
def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path, read, data, where):
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    with pytest.raises(UserError) as info:
        read(path)
    assert str(info.value) == f"{path}:{where}"


@pytest.mark.parametrize("text", ["", "\n \n\t\n", "\ufeff\r\n"])
def test_a_class_names_file_without_names_is_refused(tmp_path, text):
    path = tmp_path / "class_names.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: no class names in the file$"):
        listfile.read_class_names(path)


def test_class_names_read_ignores_bom_crlf_blank_lines_and_spaces(tmp_path):
    path = tmp_path / "class_names.txt"
    path.write_bytes("\ufeffdesert\r\n\r\n  sea view \r\nsunset".encode("utf-8"))
    assert listfile.read_class_names(path) == ["desert", "sea view", "sunset"]


def test_class_names_must_be_one_per_class():
    with pytest.raises(UserError, match="^names.txt: 2 class names for 3 classes$"):
        listfile.check_class_names(["a", "b"], "names.txt", num_classes=3)
    listfile.check_class_names(["a", "b", "c"], "names.txt", num_classes=3)


def test_an_empty_class_name_is_named_by_its_position():
    with pytest.raises(UserError, match="^names.txt: class name 2 is empty$"):
        listfile.check_class_names(["a", " ", "c"], "names.txt")


def test_an_index_of_eighteen_digits_is_read_and_one_of_nineteen_refused():
    # 18 digits always fit below 2**63; leading zeros do not count.
    (entry,) = listfile.read_list([f"{'9' * 18}\t1\timages/a.jpg"], "x.lst")
    assert entry.index == 10**18 - 1
    (padded,) = listfile.read_list([f"000{'9' * 18}\t1\timages/a.jpg"], "x.lst")
    assert padded.index == 10**18 - 1
    with pytest.raises(UserError, match=r"x\.lst:1: index '1{19}' has 19 digits, more than the "
                                        r"18 allowed"):
        listfile.read_list([f"{'1' * 19}\t1\timages/a.jpg"], "x.lst")


def test_a_long_bad_field_is_cut_to_forty_characters_in_the_message():
    long_flag = "x" * 41
    with pytest.raises(UserError, match=re.escape(f"flag '{'x' * 40}...' is not 0 or 1")):
        listfile.read_list([f"1\t{long_flag}\timages/a.jpg"], "x.lst")
    with pytest.raises(UserError, match=re.escape(f"flag '{'x' * 40}' is not 0 or 1")):
        listfile.read_list([f"1\t{'x' * 40}\timages/a.jpg"], "x.lst")  # 40 fit: not cut
