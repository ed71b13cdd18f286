"""PyTorch weight files in the legacy format, written without PyTorch for the tests."""

import collections
import io
import pickle
import struct
import sys
import types

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class Storage:
    """One flat float32 storage that several tensors may view."""

    def __init__(self, key, values):
        self.key, self.values = key, np.asarray(values, np.float32)


def legacy_pth(monkeypatch, tensors, rebuild="_rebuild_tensor_v2", checkpoint=False):
    """Write `tensors` {name: (Storage, offset, size, stride)} as PyTorch's legacy format.

    `rebuild` names the tensor constructor the pickle calls: `_rebuild_tensor_v2` (PyTorch
    0.4 to 1.5) or `_rebuild_tensor` (before 0.4). With `checkpoint`, the state dict is
    wrapped as a training script saves it: {"epoch": ..., "state_dict": ...}.

    Pickle names globals by module and name and checks them on import, so fake `torch`
    modules stand in for the real ones while writing.
    """
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def rebuild_tensor(*args):
        raise AssertionError("only pickled, never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    rebuild_tensor.__module__, rebuild_tensor.__qualname__ = "torch._utils", rebuild
    torch.FloatStorage = FloatStorage
    setattr(utils, rebuild, rebuild_tensor)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    extra = (False, collections.OrderedDict()) if rebuild == "_rebuild_tensor_v2" else ()

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, tuple(size), tuple(stride), *extra)

        def __reduce__(self):
            return rebuild_tensor, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.values.size, None)
            return None

    out = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    state = collections.OrderedDict((name, Tensor(*args)) for name, args in tensors.items())
    if checkpoint:
        state = {"epoch": 70, "arch": "test", "state_dict": state, "best_prec1": 54.0}
    Pickler(out, protocol=2).dump(state)
    storages = {args[0].key: args[0] for args in tensors.values()}
    pickle.dump(list(storages), out, protocol=2)
    for storage in storages.values():
        out.write(struct.pack("<q", storage.values.size))
        out.write(storage.values.astype("<f4").tobytes())
    return out.getvalue()


def state_dict_pth(monkeypatch, arrays, **kwargs):
    """`arrays` {name: numpy array} as a legacy `.pth` file, one storage per tensor."""
    tensors = {}
    for i, (name, array) in enumerate(arrays.items()):
        array = np.asarray(array, np.float32)
        strides = [int(np.prod(array.shape[d + 1:])) for d in range(array.ndim)]
        tensors[name] = (Storage(str(i), array.ravel()), 0, array.shape, strides)
    return legacy_pth(monkeypatch, tensors, **kwargs)
