"""Reading the lists into checked train, validation and test parts."""

import logging
import os
import re

import numpy as np
import pytest
from PIL import Image

from multilabel.data import dataset, listfile
from multilabel.base.errors import UserError


def write_dataset(folder, train_count=40, test_count=5, names=("a", "b")):
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(train_count + test_count):
        Image.new("RGB", (8, 8), (i * 5 % 256, 0, 0)).save(images / f"{i}.jpg")
        entries.append(listfile.Entry(i, (i % 2, 1 - i % 2), f"images/{i}.jpg", i + 1))
    listfile.write_list_file(folder / listfile.TRAIN_LIST, entries[:train_count])
    listfile.write_list_file(folder / listfile.TEST_LIST, entries[train_count:])
    if names:
        listfile.write_class_names(folder / listfile.CLASS_NAMES_FILE, names)
    return folder


def test_validation_comes_from_the_training_list_and_test_from_the_test_list(tmp_path):
    data = dataset.load_dataset(write_dataset(tmp_path), validation_percentage=30)
    assert len(data.test) == 5
    assert len(data.train) + len(data.validation) == 40
    assert 0 < len(data.validation) < 40
    assert not set(data.train.paths) & set(data.validation.paths)
    assert data.class_names == ("a", "b")
    assert data.validation.sources[0].startswith(str(tmp_path / listfile.TRAIN_LIST) + ":")


def test_an_empty_validation_part_keeps_its_label_columns(tmp_path):
    data = dataset.load_dataset(write_dataset(tmp_path, train_count=3), validation_percentage=0)
    assert len(data.validation) == 0
    assert data.validation.labels.shape == (0, 2)
    assert np.concatenate([data.train.labels, data.validation.labels]).shape == (3, 2)


def test_the_split_survives_moving_the_folder(tmp_path):
    first = dataset.load_dataset(write_dataset(tmp_path / "one"), validation_percentage=30)
    second = dataset.load_dataset(write_dataset(tmp_path / "elsewhere" / "two"),
                                  validation_percentage=30)
    names = lambda part: [p.rsplit("/", 1)[-1] for p in part.paths]  # noqa: E731
    assert names(first.validation) == names(second.validation)


def test_without_a_test_list_the_test_part_is_carved_from_training(tmp_path):
    folder = write_dataset(tmp_path, train_count=200)
    (folder / listfile.TEST_LIST).unlink()
    data = dataset.load_dataset(folder, validation_percentage=10, testing_percentage=20)
    assert len(data.train) + len(data.validation) + len(data.test) == 200
    assert 20 < len(data.test) < 65 and 5 < len(data.validation) < 40
    assert not set(data.test.paths) & (set(data.train.paths) | set(data.validation.paths))


def test_without_class_names_the_classes_are_numbered(tmp_path):
    data = dataset.load_dataset(write_dataset(tmp_path, names=None))
    assert data.class_names == ("label_0", "label_1")


def _folder(path):
    path.mkdir()


def _fifo(path):
    os.mkfifo(path)


def _dangling(path):
    os.symlink("gone.txt", path)


@pytest.mark.parametrize("name", [listfile.CLASS_NAMES_FILE, listfile.TEST_LIST])
@pytest.mark.parametrize("make, words", [
    (_folder, "is a folder, not a"),
    (_fifo, "not a regular file but a FIFO"),
    (_dangling, "dangling symlink (to 'gone.txt', which does not exist)"),
])
def test_a_class_names_file_or_test_list_that_is_not_a_file_is_an_error(tmp_path, name,
                                                                        make, words):
    """Issue 38: not taken for absent (classes label_0..., a test part carved from training)."""
    folder = write_dataset(tmp_path)
    (folder / name).unlink()
    make(folder / name)
    with pytest.raises(UserError, match=re.escape(words)) as error:
        dataset.load_dataset(folder)
    assert error.value.path == str(folder / name)


def test_a_missing_dataset_folder_is_named_not_its_list(tmp_path, monkeypatch):
    """Issue 32: retrain.py --image_dir ./DATASET/ run from elsewhere."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(
            f"dataset folder not found (looked for {tmp_path / 'DATASET'}); --image_dir "
            "names it, relative to the current folder")):
        dataset.load_dataset("./DATASET/")


def test_num_classes_must_match_the_lists(tmp_path):
    with pytest.raises(UserError, match=r"dataset_train.lst:1: has 2 flags per line but "
                                        r"--num_classes is 3"):
        dataset.load_dataset(write_dataset(tmp_path), num_classes=3)


def test_class_names_must_match_the_lists(tmp_path):
    with pytest.raises(UserError, match=r"class_names.txt: has 3 class names but the lists have 2"):
        dataset.load_dataset(write_dataset(tmp_path, names=("a", "b", "c")))


def test_one_bad_image_stops_the_run_naming_list_and_line(tmp_path):
    folder = write_dataset(tmp_path)
    (folder / "images" / "3.jpg").write_bytes(b"not an image")
    data = dataset.load_dataset(folder, validation_percentage=0)
    with pytest.raises(UserError) as error:
        dataset.drop_invalid_images(data, skip_invalid=False)
    image = folder / "images" / "3.jpg"
    assert str(error.value) == (
        f"{folder / listfile.TRAIN_LIST}:4: {image}: cannot decode image: cannot identify "
        f"image file '{image}'; fix the list or pass --skip_invalid_images")
    assert error.value.details == ()


def test_every_bad_image_is_named_in_list_order_across_parts(tmp_path):
    folder = write_dataset(tmp_path)
    broken = (41, 3, 7, 20, 33)  # 41 is on line 2 of the test list
    for i in broken:
        (folder / "images" / f"{i}.jpg").write_bytes(b"not an image")
    (folder / "images" / "12.jpg").unlink()
    data = dataset.load_dataset(folder, validation_percentage=30)
    assert str(folder / "images" / "20.jpg") in data.validation.paths  # between train lines
    with pytest.raises(UserError) as error:
        dataset.drop_invalid_images(data, skip_invalid=False)
    assert str(error.value) == "6 invalid images; fix the list or pass --skip_invalid_images"
    train, test = folder / listfile.TRAIN_LIST, folder / listfile.TEST_LIST
    expected = [f"{train}:{i + 1}: {folder / 'images' / f'{i}.jpg'}: " for i in (3, 7, 12, 20, 33)]
    expected.append(f"{test}:2: {folder / 'images' / '41.jpg'}: ")
    assert [d[:len(e)] for d, e in zip(error.value.details, expected)] == expected
    assert len(error.value.details) == 6
    assert error.value.details[2].endswith("12.jpg: image file not found")


def test_a_long_run_of_bad_images_is_cut_with_the_rest_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_LISTED_INVALID", 4)
    folder = write_dataset(tmp_path)
    for i in range(10):
        (folder / "images" / f"{i}.jpg").unlink()
    data = dataset.load_dataset(folder, validation_percentage=0)
    with pytest.raises(UserError) as error:
        dataset.drop_invalid_images(data, skip_invalid=False)
    assert str(error.value) == ("10 invalid images (4 listed, 6 more not); fix the list or "
                                "pass --skip_invalid_images")
    assert [d.split(": ")[1] for d in error.value.details] == \
        [str(folder / "images" / f"{i}.jpg") for i in range(4)]


def test_skip_invalid_images_drops_them_with_a_count(tmp_path, caplog):
    folder = write_dataset(tmp_path)
    (folder / "images" / "3.jpg").write_bytes(b"")
    (folder / "images" / "42.jpg").unlink()  # in the test list
    data = dataset.load_dataset(folder, validation_percentage=0)
    with caplog.at_level(logging.WARNING):
        kept = dataset.drop_invalid_images(data, skip_invalid=True)
    assert len(kept.train) == 39 and len(kept.test) == 4
    assert str(folder / "images" / "3.jpg") not in kept.train.paths
    assert "Skipped 1 invalid images of the train part" in caplog.text
    assert "Skipped 1 invalid images of the test part" in caplog.text


def _part(name, labels):
    labels = np.array(labels, dtype=np.int64).reshape(-1, 2)
    paths = tuple(f"{name}{i}.jpg" for i in range(len(labels)))
    return dataset.Part(name, paths, labels, paths)


@pytest.mark.parametrize("validation, words", [
    ([[1, 1]] * 49, "Small validation part (49 images): the kept step"),
    ([[1, 0]] * 60 + [[0, 1]] * 4, "(64 images; classes with under 5 positives there: b 4)"),
])
def test_a_small_validation_part_says_what_rests_on_it(validation, words):
    data = dataset.Dataset(_part("train", [[1, 0]] * 300), _part("validation", validation),
                           _part("test", [[1, 1]]), ("a", "b"))
    note = dataset.small_validation_note(data)
    assert words in note
    assert note.endswith(f"out-of-fold predictions of all {300 + len(validation)} training images")


def test_a_large_validation_part_or_an_empty_one_has_no_note():
    train, test = _part("train", [[1, 0]] * 300), _part("test", [[1, 1]])
    large = dataset.Dataset(train, _part("validation", [[1, 1]] * 50), test, ("a", "b"))
    empty = dataset.Dataset(train, _part("validation", []), test, ("a", "b"))
    assert dataset.small_validation_note(large) is None
    assert dataset.small_validation_note(empty) is None
