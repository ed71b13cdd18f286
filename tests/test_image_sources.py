"""Finding images in a folder or a list file for label_image.py."""

import os

import pytest

from multilabel.base.errors import UserError
from multilabel.data.image_sources import images_in_folder, images_in_list, is_image_name


def test_folder_gives_image_files_sorted(tmp_path):
    for name in ["b.JPG", "a.png", "c.webp", "notes.txt", ".hidden.jpg", "._a.png"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.jpg").mkdir()
    assert images_in_folder(tmp_path) == [os.path.join(tmp_path, n)
                                          for n in ["a.png", "b.JPG", "c.webp"]]


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "image folder not found"),
    (lambda p: p.write_text("x"), "not a folder"),
    (lambda p: p.mkdir(), "no image files"),
])
def test_folder_errors_name_the_folder(tmp_path, make, message):
    folder = tmp_path / "photos"
    make(folder)
    with pytest.raises(UserError, match=message) as error:
        images_in_folder(folder)
    assert error.value.path == str(folder)


def test_list_paths_are_joined_onto_the_list_folder(tmp_path):
    listing = tmp_path / "data" / "dataset_test.lst"
    listing.parent.mkdir()
    listing.write_text("3\t1\t0\timages/x.jpg\n7\t0\t1\timages/sub/y.jpg\n")
    assert images_in_list(listing) == [os.path.join(tmp_path, "data", "images", "x.jpg"),
                                       os.path.join(tmp_path, "data", "images", "sub", "y.jpg")]


def test_list_errors_name_file_and_line(tmp_path):
    listing = tmp_path / "dataset.lst"
    listing.write_text("1\t1\timages/x.jpg\n2\t1\t../escape.jpg\n")
    with pytest.raises(UserError) as error:
        images_in_list(listing)
    assert (error.value.path, error.value.line) == (str(listing), 2)


def test_an_image_name_goes_by_its_extension_and_is_never_a_dot_file():
    assert [is_image_name(n) for n in
            ("a.jpg", "B.JPEG", "c.webp", "notes.txt", "._a.jpg", ".hidden.png", "jpg")] == \
        [True, True, True, False, False, False, False]
