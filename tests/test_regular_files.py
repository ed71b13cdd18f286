"""Issue 38 case 4: every file the tools read goes through `storage.read_regular`, so a
FIFO, a device, a folder or a dangling link is one line, never a hang or a 3 GB read."""

import os

import pytest

import label_image
from multilabel.base import storage
from tests.test_hardening import unblocked
from tests.test_label_image import model, write_image  # noqa: F401 (model: a fixture)


def _run(argv, capsys):
    status = label_image.main(argv + ["-q"])
    err = capsys.readouterr().err
    return status, err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, flag", [
    ("output_thresholds.txt", None), ("output_thresholds.json", None),
    ("run_manifest.json", None), ("output_labels.txt", None),
    ("given_thresholds.txt", "--thresholds"), ("output_graph.pb", "--graph"),
])
@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "dangling"])
def test_a_file_of_the_model_that_is_not_regular_is_one_line(
        tmp_path, model, capsys, name, flag, kind):  # noqa: F811
    folder = tmp_path / "MODEL_DETAILS"
    path = folder / name
    if path.exists():
        path.unlink()
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    argv = model + ["--engine", "tf", str(image)]
    if flag == "--thresholds":
        argv += ["--thresholds", str(path)]

    def check():
        status, err = _run(argv, capsys)
        assert status == 2
        assert err.count("\n") == 1 and err.startswith("label_image.py: error: "), err
        assert str(path) in err
        return err

    if kind == "fifo":
        with unblocked(path):
            assert "not a regular file but a FIFO" in check()
    elif kind == "device":
        os.symlink("/dev/zero", path)  # read whole, it grew memory past 3 GB
        assert "not a regular file but a device" in check()
    elif kind == "folder":
        path.mkdir()
        assert "is a folder" in check()
    elif name != "output_thresholds.json" and flag != "--thresholds" and name not in (
            "run_manifest.json", "output_thresholds.txt"):
        os.symlink(tmp_path / "nowhere", path)
        assert "not found" in check()


def test_a_file_over_its_bound_is_refused_after_reading_the_bound(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 101)
    with pytest.raises(storage.TooLargeError, match="larger than the 100 bytes"):
        storage.read_regular(big, limit=100)
    assert storage.read_regular(big, limit=101) == b"x" * 101


@pytest.mark.timeout(60)
def test_a_module_folder_holding_a_fifo_is_one_line(tmp_path):
    from multilabel.base.errors import UserError
    from multilabel.features import feature_modules

    module = tmp_path / "module"
    module.mkdir()
    with unblocked(module / "saved_model.pb"):
        with pytest.raises(UserError, match="saved_model.pb: cannot read the module: not a "
                                            "regular file but a FIFO"):
            feature_modules._read_saved_model(str(module))
        with pytest.raises(UserError, match="not a regular file but a FIFO"):
            feature_modules.module_fingerprint(str(module))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_data_generation_s_labels_file_that_is_not_regular_is_one_line(tmp_path, capsys, kind):
    """`data_generation.py --labels FIFO` hung, and /dev/zero grew memory without end."""
    import data_generation

    (tmp_path / "images").mkdir()
    labels = tmp_path / "labels.csv"
    argv = ["--image_dir", str(tmp_path), "--labels", str(labels)]
    if kind == "fifo":
        with unblocked(labels):
            status = data_generation.main(argv)
    else:
        os.symlink("/dev/zero", labels)
        status = data_generation.main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert f"not a regular file but a {'FIFO' if kind == 'fifo' else 'device'}" in err
    assert not (tmp_path / "dataset.lst").exists()
