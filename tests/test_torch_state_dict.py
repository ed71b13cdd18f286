import collections
import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from multilabel.errors import UserError
from multilabel.torch_state_dict import read_state_dict


class _Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


def _legacy_pth(monkeypatch, tensors):
    """Write `tensors` {name: (storage, offset, size, stride)} as PyTorch's legacy format.

    Pickle names globals by module and name and checks them on import, so fake `torch`
    modules stand in for the real ones while writing.
    """
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.values.size, None)
            return None

    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001,
                                                   "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    state = collections.OrderedDict((name, Tensor(*args)) for name, args in tensors.items())
    Pickler(out, protocol=2).dump(state)
    storages = {args[0].key: args[0] for args in tensors.values()}
    pickle.dump(list(storages), out, protocol=2)
    for storage in storages.values():
        out.write(struct.pack("<q", storage.values.size))
        out.write(storage.values.astype("<f4").tobytes())
    return out.getvalue()


def test_reads_tensors_with_offsets_and_strides(monkeypatch):
    shared = _Storage("0", np.arange(10, dtype=np.float32))
    data = _legacy_pth(monkeypatch, {
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


def test_truncated_file_is_one_error(monkeypatch):
    data = _legacy_pth(monkeypatch, {"w": (_Storage("0", np.ones(4, np.float32)), 0, (4,), (1,))})
    with pytest.raises(UserError, match="weights.pth: corrupt or unsupported"):
        read_state_dict(data[:-3], "weights.pth")


def test_tensor_overrunning_its_storage_is_an_error(monkeypatch):
    data = _legacy_pth(monkeypatch, {"w": (_Storage("0", np.ones(4, np.float32)), 2, (4,), (1,))})
    with pytest.raises(UserError, match="overruns its storage"):
        read_state_dict(data)


def test_pickle_naming_other_code_is_refused():
    """A .pth pickle could name any callable; the reader must not run it."""
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
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
