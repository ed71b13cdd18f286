import pytest

from multilabel.data import labels_json
from multilabel.base.errors import UserError


def test_one_list_a_line_without_final_newline():
    text = "[1, -1, -1]\n[-1, 1, 1]\n[0, 0, 1]"
    assert labels_json.parse_labels(text, "l.json") == [
        (1, (1, 0, 0)), (2, (0, 1, 1)), (3, (0, 0, 1))]


def test_accepts_crlf_bom_and_blank_lines_at_the_end():
    text = "\ufeff[1, -1]\r\n[-1, 1]\r\n\r\n"
    assert labels_json.parse_labels(text) == [(1, (1, 0)), (2, (0, 1))]


def test_whole_file_one_array_keeps_line_numbers():
    text = "[\n  [1, -1],\n  [-1, 1]\n]\n"
    assert labels_json.parse_labels(text) == [(2, (1, 0)), (3, (0, 1))]
    assert labels_json.parse_labels("[[1,-1],[0,1]]") == [(1, (1, 0)), (1, (0, 1))]
    # Lines before the array count too.
    assert labels_json.parse_labels("\n\n[\n  [1, -1]\n]") == [(4, (1, 0))]


@pytest.mark.parametrize("text, num_classes, line, words", [
    ("[1, -1]\n[1, -1, 1]\n", None, 2, "3 flags, expected 2"),
    ("[1, -1]\n", 3, 1, "2 flags, expected 3"),
    ("[1, -1]\n[2, -1]", None, 2, "flag 2 is not 1 (present) or -1/0 (absent)"),
    ("[1, -1]\n[true, -1]", None, 2, "flag true is not"),
    ("[1, -1]\n[1.0, -1]", None, 2, "flag 1.0 is not"),
    ("[1, -1]\n[1, -1\n", None, 2, "not a JSON list"),
    ("[1, -1]\n{\"a\": 1}\n", None, 2, "expected a JSON list of flags"),
    ("[1, -1]\n\n[1, -1]\n", None, 2, "blank line between label lines"),
    ("[\n  [1, -1],\n  [1, 2]\n]", None, 3, "flag 2 is not"),
    # The outer bracket closes the second list, then the array lacks its own.
    ("[\n  [1, -1],\n  [1, -1\n]", None, 4, "bad JSON: expected ',' or ']' after a label list"),
    ("[\n  [1, -1],\n  [1, x]\n]", None, 3, "bad JSON: Expecting value at column 7"),
    ("[[x]]", None, 1, "bad JSON: Expecting value at column 3"),
    ("[\n  [1, -1]\n  [1, -1]\n]", None, 3, "expected ',' or ']'"),
    ("[[1, -1]]\nx", None, 2, "extra text"),
    ("[[1, -1]]x", None, 1, "extra text"),  # junk right after the closing bracket
    ("[]x", None, 1, "extra text"),  # after an empty array
])
def test_rejects_bad_labels_naming_file_and_line(text, num_classes, line, words):
    with pytest.raises(UserError) as info:
        labels_json.parse_labels(text, "l.json", num_classes)
    assert (info.value.path, info.value.line) == ("l.json", line)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["", "\n", "[]"])
def test_rejects_a_file_without_rows(text):
    with pytest.raises(UserError, match="no label rows"):
        labels_json.parse_labels(text, "l.json")


def test_reads_a_file(tmp_path):
    path = tmp_path / "labels.json"
    path.write_bytes(b"[1, -1]\r\n[-1, 1]")
    assert labels_json.read_labels_file(path) == [(1, (1, 0)), (2, (0, 1))]
    with pytest.raises(UserError, match="labels file not found"):
        labels_json.read_labels_file(tmp_path / "none.json")
    with pytest.raises(UserError, match="is a folder, not a labels file"):
        labels_json.read_labels_file(tmp_path)


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "labels.json"
    path.write_bytes(b"[1, -1]\n[-1, 1] \xff\n")
    with pytest.raises(UserError) as info:
        labels_json.read_labels_file(path)
    assert str(info.value) == (
        f"{path}:2: not UTF-8 text: byte 0xff at column 9 (invalid start byte)")


def test_a_number_python_refuses_to_read_is_one_line_naming_the_line():
    huge = "1" * 5000  # past sys.get_int_max_str_digits() (4300 by default)
    with pytest.raises(UserError, match=r"^x\.json:2: not a JSON list: a number with more than "
                                        r"\d+ digits$"):
        labels_json.parse_labels(f"[1, -1]\n[{huge}, 1]\n", "x.json")
    with pytest.raises(UserError, match=r"^x\.json:2: bad JSON: a number with more than \d+ "
                                        r"digits$"):
        labels_json.parse_labels(f"[[1, -1],\n [{huge}, 1]]", "x.json")


def test_lists_nested_too_deeply_are_one_line_naming_the_line():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(UserError, match=r"^x\.json:2: not a JSON list: lists nested too "
                                        r"deeply$"):
        labels_json.parse_labels("[1, -1]\n" + deep + "\n", "x.json")
    with pytest.raises(UserError, match=r"^x\.json:2: bad JSON: lists nested too deeply$"):
        labels_json.parse_labels("[[1],\n" + deep + "]", "x.json")


def test_a_long_bad_value_is_cut_to_forty_characters_in_the_message():
    forty = '"' + "a" * 38 + '"'  # json.dumps of it is exactly 40 characters: not cut
    with pytest.raises(UserError, match=f"got {forty}$"):
        labels_json.parse_labels(forty + "\n", "x.json")
    with pytest.raises(UserError, match='got "' + "a" * 39 + r"\.\.\.$"):
        labels_json.parse_labels('"' + "a" * 39 + '"\n', "x.json")
