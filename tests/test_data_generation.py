import json
import logging
import os
import pathlib
import shutil

import pytest
from PIL import Image

import data_generation
from multilabel.data import images, listfile

REAL_SET = pathlib.Path(__file__).resolve().parents[1] / "DATASET"  # ships with the project
CLASSES = "desert,mountains,sea,sunset"
LISTS = (listfile.FULL_LIST, listfile.TRAIN_LIST, listfile.TEST_LIST)


def flag_row(i, num_classes=4):
    """A label row with one or two classes, varied by image number."""
    return [1 if c == i % num_classes or (i % 5 == 0 and c == (i + 1) % num_classes) else -1
            for c in range(num_classes)]


def make_dataset(root, n=20, names=None, rows=None):
    """`root/images/` with n tiny JPEGs and `root/labels.json` in the real file's layout."""
    (root / "images").mkdir(parents=True)
    names = names or [f"{i}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names):
        Image.new("RGB", (4, 4), (10 * i % 256, 0, 0)).save(root / "images" / name, "JPEG")
    rows = rows if rows is not None else [flag_row(i) for i in range(1, len(names) + 1)]
    write_labels(root, [json.dumps(r) for r in rows])
    return root


def write_labels(root, lines):
    (root / "labels.json").write_text("\n".join(lines))  # no newline after the last


def run(root, *flags):
    return data_generation.main(["--image_dir", str(root), *flags])


def read(root, name):
    return listfile.read_list_file(root / name)


def test_writes_all_three_lists_and_class_names(tmp_path, capsys):
    make_dataset(tmp_path)
    assert run(tmp_path, "--class_names", CLASSES, "--split", "0.75", "--seed", "3") == 0
    full, train, test = (read(tmp_path, name) for name in LISTS)
    assert [e.index for e in full] == list(range(1, 21))
    assert [e.path for e in full] == [f"images/{i}.jpg" for i in range(1, 21)]
    assert [e.flags for e in full] == [tuple(int(f == 1) for f in flag_row(i)) for i in range(1, 21)]
    assert (len(train), len(test)) == (15, 5)
    assert {e.index for e in train}.isdisjoint(e.index for e in test)
    assert {(e.index, e.flags, e.path) for e in train + test} == {(e.index, e.flags, e.path) for e in full}
    assert listfile.read_class_names(tmp_path / listfile.CLASS_NAMES_FILE) == CLASSES.split(",")
    out = capsys.readouterr().out
    assert "images: 20 (train 15, test 5; random split, seed 3)" in out
    assert "label cardinality: 1.200 labels per image" in out
    assert "multi-label images: 4 (20.00 %)" in out
    assert "  sunset" in out


def test_natural_order_pairs_line_i_with_image_i(tmp_path):
    make_dataset(tmp_path, n=12)
    assert run(tmp_path) == 0
    full = read(tmp_path, listfile.FULL_LIST)
    by_path = {e.path: e for e in full}
    assert by_path["images/10.jpg"].flags == tuple(int(f == 1) for f in flag_row(10))
    assert by_path["images/2.jpg"].index == 2
    assert not (tmp_path / listfile.CLASS_NAMES_FILE).exists()


def test_other_names_pair_in_natural_order_and_strays_are_ignored(tmp_path):
    names = ["b10.png", "a.jpg", "b2.JPG"]
    make_dataset(tmp_path, names=names, rows=[[1, -1], [-1, 1], [1, 1]])
    (tmp_path / "images" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "images" / ".hidden.jpg").write_bytes(b"x")
    assert run(tmp_path, "--split", "0.5") == 0
    full = read(tmp_path, listfile.FULL_LIST)
    assert [(e.path, e.flags) for e in full] == [
        ("images/a.jpg", (1, 0)), ("images/b2.JPG", (0, 1)), ("images/b10.png", (1, 1))]


def test_same_seed_same_files_other_seed_other_split(tmp_path):
    make_dataset(tmp_path, n=30)
    contents = []
    for seed in ("1", "1", "2"):
        assert run(tmp_path, "--seed", seed) == 0
        contents.append([(tmp_path / name).read_bytes() for name in LISTS])
    assert contents[0] == contents[1]
    assert contents[0][1] != contents[2][1]


def test_shuffle_changes_line_order_not_membership(tmp_path):
    make_dataset(tmp_path, n=30)
    assert run(tmp_path, "--seed", "5") == 0
    plain = [read(tmp_path, name) for name in LISTS]
    assert run(tmp_path, "--seed", "5", "--shuffle") == 0
    mixed = [read(tmp_path, name) for name in LISTS]
    for before, after in zip(plain, mixed):
        assert {e.path for e in before} == {e.path for e in after}
    assert [e.index for e in mixed[0]] != sorted(e.index for e in mixed[0])


def test_stratify_puts_every_class_in_both_lists(tmp_path, capsys):
    rows = [[1, -1, -1]] * 16 + [[-1, 1, -1]] * 2 + [[1, -1, 1]] * 2
    make_dataset(tmp_path, rows=rows, n=len(rows))
    assert run(tmp_path, "--stratify", "--seed", "4") == 0
    for name in (listfile.TRAIN_LIST, listfile.TEST_LIST):
        entries = read(tmp_path, name)
        assert all(any(e.flags[c] for e in entries) for c in range(3)), name
    assert "stratified split" in capsys.readouterr().out


def fails_cleanly(root, capsys, flags=()):
    """Run, expect exit 2 with one stderr line, and no list file (or temp file) written;
    return the line's message."""
    before = sorted(os.listdir(root))
    assert run(root, *flags) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(os.listdir(root)) == before
    assert err.startswith("data_generation.py: error: "), err
    return err.strip().removeprefix("data_generation.py: error: ")


@pytest.mark.parametrize("edit, where, words", [
    (lambda lines: lines[:-1], "labels.json:20:", "no label line for images/20.jpg: 19 label lines for 20 images"),
    (lambda lines: lines[:6] + ["[1, -1, -1]"] + lines[7:], "labels.json:7:", "3 flags, expected 4"),
    (lambda lines: lines[:4] + ["[1, -1, 2, -1]"] + lines[5:], "labels.json:5:", "flag 2 is not 1"),
    (lambda lines: lines + ["[1, -1, -1, -1]"], "labels.json:21:", "has no image 21"),
    (lambda lines: lines[:3] + ["[1, -1, -1, -1"] + lines[4:], "labels.json:4:", "not a JSON list"),
])
def test_bad_labels_fail_with_file_and_line_and_write_nothing(tmp_path, capsys, edit, where, words):
    make_dataset(tmp_path)
    write_labels(tmp_path, edit([json.dumps(flag_row(i)) for i in range(1, 21)]))
    err = fails_cleanly(tmp_path, capsys)
    assert err.startswith(str(tmp_path / where)), err
    assert words in err


def test_a_missing_image_is_named_not_shifted(tmp_path, capsys):
    make_dataset(tmp_path, n=5)
    os.remove(tmp_path / "images" / "3.jpg")
    err = fails_cleanly(tmp_path, capsys)
    assert err.startswith(f"{tmp_path / 'labels.json'}:3: ") and "has no image 3" in err


def test_class_names_must_match_the_flags(tmp_path, capsys):
    make_dataset(tmp_path, n=5)
    err = fails_cleanly(tmp_path, capsys, ["--class_names", "a,b,c"])
    assert err.endswith("labels.json:1: 4 flags, but --class_names gives 3 names")


def test_missing_inputs_are_named(tmp_path, capsys):
    assert "labels.json: labels file not found" in fails_cleanly(tmp_path, capsys)
    write_labels(tmp_path, ["[1, -1]"])
    err = fails_cleanly(tmp_path, capsys)
    assert f"images: image folder not found (looked for {tmp_path / 'images'}); --images " in err


def test_old_lists_survive_a_failed_run(tmp_path, capsys):
    make_dataset(tmp_path)
    assert run(tmp_path) == 0
    old = [(tmp_path / name).read_bytes() for name in LISTS]
    write_labels(tmp_path, ["[1, -1, -1, -1]"] * 19)
    fails_cleanly(tmp_path, capsys)
    assert [(tmp_path / name).read_bytes() for name in LISTS] == old


def test_a_handful_of_real_images(tmp_path):
    """Eight real photos from across the set, renumbered 1..8 with their own label lines."""
    picks = [1, 350, 401, 777, 801, 1201, 1500, 1601]
    real_lines = (REAL_SET / "labels.json").read_text().split("\n")
    (tmp_path / "images").mkdir()
    for new, old in enumerate(picks, start=1):
        shutil.copy(REAL_SET / "images" / f"{old}.jpg", tmp_path / "images" / f"{new}.jpg")
    write_labels(tmp_path, [real_lines[old - 1] for old in picks])
    assert run(tmp_path, "--class_names", "desert,mountains,sea,sunset,trees", "--split", "0.5") == 0
    full = read(tmp_path, listfile.FULL_LIST)
    assert [e.flags for e in full] == [
        tuple(int(f == 1) for f in json.loads(real_lines[old - 1])) for old in picks]
    for entry in full:
        assert images.decode_image(listfile.image_path(tmp_path, entry)).mode == "RGB"


def test_the_full_real_label_set(tmp_path, capsys):
    """The issue's numbers: 2,000 / 1,600 / 400, disjoint, covering, and the statistics."""
    (tmp_path / "images").symlink_to(REAL_SET / "images")
    shutil.copy(REAL_SET / "labels.json", tmp_path / "labels.json")
    assert run(tmp_path, "--class_names", "desert,mountains,sea,sunset,trees",
               "--split", "0.8", "--seed", "1") == 0
    full, train, test = (read(tmp_path, name) for name in LISTS)
    assert (len(full), len(train), len(test)) == (2000, 1600, 400)
    assert {e.path for e in train} | {e.path for e in test} == {e.path for e in full}
    assert not {e.path for e in train} & {e.path for e in test}
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert rows == {"desert": "409", "mountains": "458", "sea": "580", "sunset": "465", "trees": "560"}
    assert "label cardinality: 1.236 labels per image" in out
    assert "multi-label images: 457 (22.85 %)" in out


def test_images_in_subfolders_are_named_when_labels_json_cannot_pair_them(tmp_path, caplog):
    make_dataset(tmp_path)
    sub = tmp_path / "images" / "2024"
    sub.mkdir()
    (sub / "extra.jpg").write_bytes((tmp_path / "images" / "1.jpg").read_bytes())
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path) == 0
    assert "ignoring 1 image(s) in subfolders of" in caplog.text
    assert "(2024/extra.jpg): labels.json pairs line i with image i" in caplog.text
