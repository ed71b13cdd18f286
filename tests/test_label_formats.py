"""The label layouts data_generation.py reads by file name: a tags CSV, a one-hot CSV and
label folders, and every mismatch between labels and images."""

import io
import logging
import os
import random

import pytest
from PIL import Image

import data_generation
from multilabel.base.errors import UserError
from multilabel.data import csv_labels, label_folders, listfile

LISTS = (listfile.FULL_LIST, listfile.TRAIN_LIST, listfile.TEST_LIST)
# Image id -> its tags, as in Kaggle's Planet data.
TAGS = {f"img_{i:05d}": t for i, t in enumerate(
    ["sea", "sea sunset", "desert", "trees", "mountains trees", "sunset", "desert sea",
     "trees", "sea", "mountains"], start=1)}
CLASSES = ("desert", "mountains", "sea", "sunset", "trees")


def save_image(path, shade):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (shade, 255 - shade, 0)).save(path, "JPEG")


def planet(root, rows=None, folder="train-jpg"):
    """`root/train-jpg/<id>.jpg` and `root/train_v2.csv` (image_name,tags), rows shuffled."""
    for i, name in enumerate(TAGS):
        save_image(root / folder / f"{name}.jpg", 20 * i)
    rows = rows if rows is not None else [f"{n},{t}" for n, t in TAGS.items()]
    rows = list(rows)
    random.Random(0).shuffle(rows)
    (root / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    return root / "train_v2.csv"


def run(root, *flags):
    return data_generation.main(["--image_dir", str(root), "--split", "0.8", "--seed", "1",
                                 *flags])


def full_list(root):
    return {e.path: e.flags for e in listfile.read_list_file(root / listfile.FULL_LIST)}


def flags(tags, names=CLASSES):
    return tuple(int(c in tags.split()) for c in names)


def fails_cleanly(root, capsys, *flags):
    """Exit 2, one stderr line, and no file written or changed; the line's message."""
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert run(root, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert err.startswith("data_generation.py: error: "), err
    return err.removeprefix("data_generation.py: error: ")


# --- the CSV parser on its own ---------------------------------------------------------

def test_tags_csv_names_classes_sorted_and_keeps_rows():
    table = csv_labels.parse_csv_labels(io.StringIO("image_name,tags\nb,sea sunset\na,desert\n"))
    assert table.class_names == ("desert", "sea", "sunset")
    assert [(r.name, sorted(r.labels), r.line) for r in table.rows] == [
        ("b", ["sea", "sunset"], 2), ("a", ["desert"], 3)]


def test_tags_csv_with_another_delimiter_and_given_order():
    table = csv_labels.parse_csv_labels(io.StringIO("file,labels\nx.jpg,sea;trees\n"),
                                        delimiter=";", class_names=("trees", "sea"))
    assert table.class_names == ("trees", "sea")
    assert table.rows[0].labels == {"sea", "trees"}


def test_one_hot_csv_takes_names_from_the_header_in_its_order_and_accepts_minus_one():
    table = csv_labels.parse_csv_labels(io.StringIO(
        "image,sunset,desert\r\na.jpg,1,-1\r\nb.jpg,0,0\r\nc.jpg,1,1\r\n"))
    assert table.class_names == ("sunset", "desert")  # the header's order, as the user chose
    assert [set(r.labels) for r in table.rows] == [{"sunset"}, set(), {"desert", "sunset"}]


@pytest.mark.parametrize("text, line, words", [
    ("image,tags\na.jpg,\n", 2, "a.jpg has no label"),
    ("image,tags\na.jpg,sea\nb.jpg,sea,x\n", 3, "3 columns, but the header has 2"),
    ("image,tags\n,sea\n", 2, "empty image name"),
    ("image,a,b\nx,1,2\n", 2, "'b' is '2', not 1 (present) or 0/-1 (absent)"),
    ("x.jpg,1,0\ny.jpg,0,1\n", 1, "must be a header naming the classes"),
    ("image,a,a\nx,1,0\n", 1, "class 'a' is named by two columns"),
    ("image\nx.jpg\n", 1, "one column"),
    ("image,tags\n", 1, "no rows after the header"),
])
def test_bad_csv_names_the_line(text, line, words):
    with pytest.raises(UserError) as caught:
        csv_labels.parse_csv_labels(io.StringIO(text), "labels.csv")
    assert str(caught.value).startswith(f"labels.csv:{line}: "), caught.value
    assert words in str(caught.value)


def test_class_names_restrict_tags_and_columns():
    with pytest.raises(UserError, match=r"l.csv:3: label 'beach' is not among --class_names"):
        csv_labels.parse_csv_labels(io.StringIO("i,t\na,sea\nb,beach sea\n"), "l.csv",
                                    class_names=("sea",))
    with pytest.raises(UserError, match=r"l.csv:1: no column for class 'trees'"):
        csv_labels.parse_csv_labels(io.StringIO("i,sea,desert\na,1,0\n"), "l.csv",
                                    class_names=("sea", "desert", "trees"))


# --- label folders on their own --------------------------------------------------------

def test_label_folders_merge_copies_by_content_and_keep_same_names_apart(tmp_path, caplog):
    images = tmp_path / "images"
    save_image(images / "sea" / "beach.jpg", 10)
    save_image(images / "sunset" / "beach.jpg", 99)  # same name, another photo: two images
    save_image(images / "desert" / "dune.jpg", 30)
    (images / "trees").mkdir()
    (images / "trees" / "dune copy.jpg").write_bytes((images / "desert" / "dune.jpg").read_bytes())
    save_image(images / "trees" / "2019" / "oak.jpg", 50)  # subfolders are kept
    save_image(images / "loose.jpg", 70)
    with caplog.at_level(logging.WARNING):
        found = label_folders.read_label_folders(str(images))
    assert found.class_names == ("desert", "sea", "sunset", "trees")
    assert found.images == (("desert/dune.jpg", {"desert", "trees"}),
                            ("sea/beach.jpg", {"sea"}), ("sunset/beach.jpg", {"sunset"}),
                            ("trees/2019/oak.jpg", {"trees"}))
    assert found.loose == ("loose.jpg",)
    # Issue 38: said, not merged in silence.
    assert "1 name(s) lie in several label folders with different content" in caplog.text
    assert "sea/beach.jpg and sunset/beach.jpg" in caplog.text


def test_label_folders_same_name_same_bytes_is_one_image(tmp_path):
    images = tmp_path / "images"
    save_image(images / "sea" / "beach.jpg", 10)
    (images / "sunset").mkdir()
    (images / "sunset" / "beach.jpg").write_bytes((images / "sea" / "beach.jpg").read_bytes())
    assert label_folders.read_label_folders(str(images)).images == (
        ("sea/beach.jpg", {"sea", "sunset"}),)


def test_a_linked_label_folder_is_followed_and_a_loop_ends(tmp_path, caplog):
    images = tmp_path / "images"
    save_image(images / "sea" / "a.jpg", 10)
    save_image(tmp_path / "elsewhere" / "b.jpg", 60)
    os.symlink(tmp_path / "elsewhere", images / "sunset")
    os.symlink(images, images / "sea" / "loop")  # back up: listed once, not forever
    with caplog.at_level(logging.INFO):
        found = label_folders.read_label_folders(str(images))
    assert found.class_names == ("sea", "sunset")
    assert found.images == (("sea/a.jpg", {"sea"}), ("sunset/b.jpg", {"sunset"}))
    assert "label folder sunset is a link to" in caplog.text


def test_label_folders_sort_ignoring_case(tmp_path):
    images = tmp_path / "images"
    for i, name in enumerate(("beach", "Desert", "Sea", "alps")):
        save_image(images / name / f"{i}.jpg", 40 * i)
    assert label_folders.read_label_folders(str(images)).class_names == (
        "alps", "beach", "Desert", "Sea")


# --- data_generation.py with each layout ------------------------------------------------

def test_planet_layout_pairs_by_name_whatever_the_row_order(tmp_path, capsys):
    labels = planet(tmp_path)
    assert run(tmp_path, "--labels", str(labels), "--images", "train-jpg", "--suffix", ".jpg") == 0
    assert full_list(tmp_path) == {f"train-jpg/{n}.jpg": flags(t) for n, t in TAGS.items()}
    assert listfile.read_class_names(tmp_path / listfile.CLASS_NAMES_FILE) == list(CLASSES)
    train, test = (listfile.read_list_file(tmp_path / n) for n in LISTS[1:])
    assert (len(train), len(test)) == (8, 2)
    assert "images: 10 (train 8, test 2" in capsys.readouterr().out


def test_one_hot_layout(tmp_path):
    for i, name in enumerate(TAGS):
        save_image(tmp_path / "images" / f"{name}.jpg", 20 * i)
    rows = [f"{n}.jpg," + ",".join(map(str, flags(t))) for n, t in TAGS.items()]
    (tmp_path / "labels.csv").write_text("image," + ",".join(CLASSES) + "\n" + "\n".join(rows))
    assert run(tmp_path, "--labels", str(tmp_path / "labels.csv")) == 0
    assert full_list(tmp_path) == {f"images/{n}.jpg": flags(t) for n, t in TAGS.items()}


def test_label_folder_layout(tmp_path):
    for i, (name, tags) in enumerate(TAGS.items()):
        for tag in tags.split():
            save_image(tmp_path / "images" / tag / f"{name}.jpg", 20 * i)
    assert run(tmp_path, "--label_folders", "--class_names", "trees,sunset,sea,mountains,desert") == 0
    order = ("trees", "sunset", "sea", "mountains", "desert")
    expected = {f"images/{t.split()[0] if len(t.split()) == 1 else sorted(t.split())[0]}/{n}.jpg":
                flags(t, order) for n, t in TAGS.items()}
    assert full_list(tmp_path) == expected
    assert listfile.read_class_names(tmp_path / listfile.CLASS_NAMES_FILE) == list(order)


def test_images_that_no_row_names_are_one_warning_and_left_out(tmp_path, caplog):
    labels = planet(tmp_path, rows=[f"{n},{t}" for n, t in list(TAGS.items())[:8]])
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path, "--labels", str(labels), "--images", "train-jpg",
                   "--suffix", ".jpg") == 0
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and "left out" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 image(s)" in warnings[0] and "img_00009.jpg, img_00010.jpg" in warnings[0]
    assert len(full_list(tmp_path)) == 8


# --- every mismatch: one line naming file and line, nothing written ---------------------

def test_a_row_naming_a_missing_image(tmp_path, capsys):
    labels = planet(tmp_path)
    os.remove(tmp_path / "train-jpg" / "img_00004.jpg")
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "train-jpg",
                        "--suffix", ".jpg")
    line = labels.read_text().splitlines().index("img_00004,trees") + 1
    assert err.startswith(f"{labels}:{line}: no image img_00004.jpg under "), err


def test_names_without_suffix_get_a_hint(tmp_path, capsys):
    labels = planet(tmp_path)
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "train-jpg")
    assert "add --suffix .jpg" in err and "9 more rows name images that are not there" in err


def test_the_same_image_twice_with_other_labels(tmp_path, capsys):
    labels = planet(tmp_path, rows=[f"{n},{t}" for n, t in TAGS.items()] + ["img_00001.jpg,desert"])
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "train-jpg",
                        "--suffix", ".jpg")
    assert "img_00001.jpg is labelled" in err and "on line" in err
    assert err.startswith(str(labels) + ":")


def test_a_tag_not_among_the_class_names(tmp_path, capsys):
    labels = planet(tmp_path)
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "train-jpg",
                        "--suffix", ".jpg", "--class_names", "desert,mountains,sea,sunset")
    assert "label 'trees' is not among --class_names" in err and err.startswith(str(labels) + ":")


def test_an_empty_label(tmp_path, capsys):
    labels = planet(tmp_path, rows=[f"{n},{t}" for n, t in TAGS.items()][1:] + ["img_00001,"])
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "train-jpg",
                        "--suffix", ".jpg")
    assert "img_00001 has no label" in err


def test_a_label_folder_not_among_the_class_names(tmp_path, capsys):
    save_image(tmp_path / "images" / "sea" / "a.jpg", 1)
    save_image(tmp_path / "images" / "beach" / "b.jpg", 2)
    err = fails_cleanly(tmp_path, capsys, "--label_folders", "--class_names", "sea")
    assert "label folder 'beach' is not among --class_names" in err


@pytest.mark.parametrize("make, flags, words", [
    (lambda root: (root / "labels.txt").write_text("a,b\n"), ["--labels", "labels.txt"],
     "not a label file this tool reads; labels are read from --labels FILE.csv"),
    (lambda root: save_image(root / "images" / "sea" / "a.jpg", 1), [],
     "labels.json: labels file not found (looked for "),
    (lambda root: save_image(root / "images" / "a.jpg", 1), ["--label_folders"],
     "no label folders; --label_folders reads images/<label>/<file>"),
])
def test_a_wrong_layout_says_which_layouts_are_read(tmp_path, capsys, make, flags, words):
    make(tmp_path)
    flags = [str(tmp_path / f) if f.endswith(".txt") else f for f in flags]
    assert words in fails_cleanly(tmp_path, capsys, *flags)


@pytest.mark.parametrize("flags, words", [
    (["--suffix", ".jpg"], "--suffix and --label_delim apply only to a --labels FILE.csv"),
    (["--label_folders", "--labels", "x.csv"], "give one"),
])
def test_flags_that_do_not_fit_the_layout_are_refused_first(tmp_path, capsys, flags, words):
    with pytest.raises(SystemExit) as stop:
        run(tmp_path, *flags)
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_an_images_folder_outside_the_dataset_folder(tmp_path, capsys):
    labels = planet(tmp_path / "data")
    err = fails_cleanly(tmp_path, capsys, "--labels", str(labels), "--images", "../elsewhere")
    assert "--images ../elsewhere is outside the dataset folder" in err


@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_an_empty_image_file_is_named(tmp_path, capsys, layout):
    if layout == "csv":
        labels = planet(tmp_path)
        (tmp_path / "train-jpg" / "img_00003.jpg").write_bytes(b"")
        flags = ["--labels", str(labels), "--images", "train-jpg", "--suffix", ".jpg"]
        empty = tmp_path / "train-jpg" / "img_00003.jpg"
    else:
        save_image(tmp_path / "images" / "sea" / "a.jpg", 1)
        (tmp_path / "images" / "sun").mkdir()
        empty = tmp_path / "images" / "sun" / "b.jpg"
        empty.write_bytes(b"")
        flags = ["--label_folders"]
    assert fails_cleanly(tmp_path, capsys, *flags) == f"{empty}: empty image file"


# --- issue 38, item 5: data that came out silently wrong --------------------------------

def test_a_one_class_one_hot_csv_is_told_by_its_values():
    table = csv_labels.parse_csv_labels(io.StringIO("image,sea\na.jpg,1\nb.jpg,0\n"))
    assert table.layout == "one-hot" and table.class_names == ("sea",)
    assert [set(r.labels) for r in table.rows] == [{"sea"}, set()]


def test_quoted_tags_with_the_default_delimiter_say_which_delimiter_to_give():
    text = 'image,tags\na.jpg,"mountains, sea"\n'
    with pytest.raises(UserError, match=r"l.csv:2: label 'mountains,' contains ',': the "
                                        r"labels look separated by ','.*--label_delim ','"):
        csv_labels.parse_csv_labels(io.StringIO(text), "l.csv")
    table = csv_labels.parse_csv_labels(io.StringIO(text), "l.csv", delimiter=",")
    assert table.class_names == ("mountains", "sea")


def test_a_class_name_holding_the_tag_separator_is_refused():
    with pytest.raises(UserError, match="class 'sun set' contains the tag separator ' '"):
        csv_labels.parse_csv_labels(io.StringIO("image,tags\na.jpg,sea\n"), "l.csv",
                                    class_names=("sun set", "sea"))


@pytest.mark.parametrize("name", ["sea\tsun", "sea\x00", "\x1b[31mred", "bell\x07"])
def test_class_names_with_control_characters_are_refused(name):
    with pytest.raises(UserError, match="contains the control character"):
        listfile.check_class_names(["desert", name], "names.txt")


@pytest.mark.parametrize("csv_text", [
    'image_name,tags\nimg_00001,"sea\nsun"\n',  # a quoted newline inside a tag
    "image_name,sea\x01,desert\nimg_00001,1,0\n",  # a control character in a header name
])
def test_a_bad_class_name_is_refused_before_any_list_is_written(tmp_path, capsys, csv_text):
    labels = planet(tmp_path)
    assert run(tmp_path, "--labels", str(labels), "--images", "train-jpg", "--suffix",
               ".jpg") == 0
    (tmp_path / "bad.csv").write_text(csv_text)
    err = fails_cleanly(tmp_path, capsys, "--labels", "bad.csv", "--images", "train-jpg",
                        "--suffix", ".jpg")
    assert "bad.csv: class name" in err


def test_a_label_folder_name_with_a_tab_is_refused_before_any_list_is_written(tmp_path,
                                                                              capsys):
    save_image(tmp_path / "images" / "sea" / "a.jpg", 1)
    save_image(tmp_path / "images" / "sun\tset" / "b.jpg", 90)
    assert "contains the control character '\\t'" in fails_cleanly(
        tmp_path, capsys, "--label_folders")


# --- issue 32: own data without traps ---------------------------------------------------

OWN_CLASSES = ("black & white", "sun set", "désert")


def test_label_images_csv_reads_back_into_the_same_classes(tmp_path, capsys):
    """The CSV label_image.py writes (probabilities, then the predicted set joined by a
    tab), given to data_generation.py as it is, makes the model's classes again."""
    from multilabel.labelling.label_report import Report
    import numpy as np
    report = Report("csv", OWN_CLASSES, np.full(3, 0.5))
    rows = [report.header()]
    for i, probs in enumerate([[0.9, 0.8, 0.1], [0.1, 0.1, 0.9], [0.6, 0.1, 0.7]] * 4):
        save_image(tmp_path / "images" / f"{i}.jpg", 20 * i)
        # Paths as label_image.py prints those it was given: absolute ones, here and there.
        rows.append(report.record(str(tmp_path / "images" / f"{i}.jpg") if i % 2 else
                                  f"{i}.jpg", probs))
    (tmp_path / "predicted.csv").write_text("".join(rows))
    assert run(tmp_path, "--labels", "predicted.csv") == 0
    assert listfile.read_class_names(tmp_path / listfile.CLASS_NAMES_FILE) == list(OWN_CLASSES)
    assert full_list(tmp_path)["images/0.jpg"] == (1, 1, 0)
    assert full_list(tmp_path)["images/2.jpg"] == (1, 0, 1)


def test_labels_and_images_are_both_relative_to_the_dataset_folder(tmp_path, capsys,
                                                                   monkeypatch):
    labels = planet(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert run(tmp_path / "data", "--labels", "train_v2.csv", "--images", "train-jpg",
               "--suffix", ".jpg") == 0
    # A path given from the current folder: where it was looked for, and the fix.
    err = fails_cleanly(tmp_path / "data", capsys, "--labels", "data/train_v2.csv",
                        "--images", "train-jpg", "--suffix", ".jpg")
    assert (f"labels file not found (looked for {tmp_path / 'data' / 'data' / 'train_v2.csv'}"
            "); --labels names it, relative to --image_dir") in err
    assert "data/train_v2.csv is in the current folder: give it relative to" in err
    assert labels.exists()
    err = fails_cleanly(tmp_path / "data", capsys, "--labels", "train_v2.csv", "--suffix",
                        ".jpg")
    assert (f"image folder not found (looked for {tmp_path / 'data' / 'images'}); --images "
            "names it") in err


def test_a_missing_dataset_folder_is_named_with_its_flag(tmp_path, capsys):
    err = fails_cleanly(tmp_path, capsys, "--image_dir", str(tmp_path / "nowhere"))
    assert f"dataset folder not found (looked for {tmp_path / 'nowhere'}); --image_dir" in err


def test_a_class_with_few_positives_is_named_with_its_counts_per_part(tmp_path, caplog):
    labels = planet(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path, "--labels", str(labels), "--images", "train-jpg",
                   "--suffix", ".jpg") == 0
    # desert has 2 positives of 10 images: under MIN_POSITIVES.
    line = next(r.getMessage() for r in caplog.records if "class desert" in r.getMessage())
    train, test = (sum(e.flags[0] for e in listfile.read_list_file(tmp_path / name))
                   for name in (listfile.TRAIN_LIST, listfile.TEST_LIST))
    assert (f"class desert has only {train} positive image(s) in the training list (all 2, "
            f"test {test})") in line
    assert "retrain.py needs to choose its threshold: it will use 0.5" in line
