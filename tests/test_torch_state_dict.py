import io
import pickle

import numpy as np
import pytest

from multilabel.base.errors import UserError
from multilabel.features.backbones.torch_state_dict import read_state_dict
from tests.fake_pth import LEGACY_MAGIC, Storage, legacy_pth


def test_reads_tensors_with_offsets_and_strides(monkeypatch):
    shared = Storage("0", np.arange(10, dtype=np.float32))
    data = legacy_pth(monkeypatch, {
        "matrix": (shared, 0, (2, 3), (3, 1)),
        "transposed": (shared, 0, (3, 2), (1, 3)),
        "tail": (shared, 6, (4,), (1,)),
    })
    state = read_state_dict(data)
    np.testing.assert_array_equal(state["matrix"], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(state["transposed"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(state["tail"], [6, 7, 8, 9])
    assert list(state) == ["matrix", "transposed", "tail"]
    assert state["matrix"].dtype == np.float32 and state["transposed"].flags.c_contiguous


def test_reads_the_state_dict_of_an_old_training_checkpoint(monkeypatch):
    """PyTorch before 0.4 pickled `_rebuild_tensor`; training scripts save a dict around
    the state dict (the Places365 weights are both)."""
    data = legacy_pth(monkeypatch, {"module.w": (Storage("7", np.arange(6)), 0, (2, 3), (3, 1))},
                      rebuild="_rebuild_tensor", checkpoint=True)
    state = read_state_dict(data)
    assert list(state) == ["module.w"]
    np.testing.assert_array_equal(state["module.w"], [[0, 1, 2], [3, 4, 5]])


def test_truncated_file_is_one_error(monkeypatch):
    data = legacy_pth(monkeypatch, {"w": (Storage("0", np.ones(4, np.float32)), 0, (4,), (1,))})
    with pytest.raises(UserError, match="weights.pth: corrupt or unsupported"):
        read_state_dict(data[:-3], "weights.pth")


def test_tensor_overrunning_its_storage_is_an_error(monkeypatch):
    data = legacy_pth(monkeypatch, {"w": (Storage("0", np.ones(4, np.float32)), 2, (4,), (1,))})
    with pytest.raises(UserError, match="overruns its storage"):
        read_state_dict(data)


def test_pickle_naming_other_code_is_refused():
    """A .pth pickle could name any callable; the reader must not run it."""
    out = io.BytesIO()
    pickle.dump(LEGACY_MAGIC, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"little_endian": True}, out, protocol=2)
    out.write(b"cos\nsystem\n(S'echo pwned'\ntR.")  # os.system("echo pwned")
    with pytest.raises(UserError, match="refusing to load os.system"):
        read_state_dict(out.getvalue(), "evil.pth")


@pytest.mark.parametrize("data, message", [
    (b"", "corrupt"),
    (b"PK\x03\x04 zip", "zip format"),
    (pickle.dumps(12345, protocol=2), "wrong magic number"),
])
def test_other_bytes_are_one_error(data, message):
    with pytest.raises(UserError, match=message):
        read_state_dict(data, "x.pth")
