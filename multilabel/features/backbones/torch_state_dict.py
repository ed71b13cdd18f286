"""Read a PyTorch state dict into numpy arrays without installing PyTorch.

The EfficientNet-Lite and Places365 weights ship as `.pth` files in PyTorch's legacy
format (before 1.6): a few small pickles (magic number, protocol, system info), the
state dict pickled with tensors as `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)` (`_rebuild_tensor(storage, offset, size, stride)` before PyTorch
0.4) and storages as persistent ids, the list of storage keys, then each storage's raw
little-endian bytes after an 8-byte element count. A training checkpoint, as PyTorch's
ImageNet example saves it, pickles `{"state_dict": ..., "epoch": ..., ...}` instead of
the bare state dict; its state dict is what is read.

A pickle can run any code it names, so the unpickler here resolves only the handful
of globals a state dict needs and refuses everything else.
"""

import collections
import io
import pickle
import struct

import numpy as np

from multilabel.base.errors import UserError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for `torch.FloatStorage` and friends: only the dtype matters."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


_TensorRef = collections.namedtuple("_TensorRef", "storage offset size stride")


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """Stands in for `torch._utils._rebuild_tensor_v2` and its predecessor
    `_rebuild_tensor`; resolved once storages are read."""
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, stream):
        super().__init__(stream)
        self.storages = {}  # key -> (dtype, number of elements)

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a state dict")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view_metadata = saved_id
        if kind != "storage" or view_metadata is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {saved_id!r}")
        self.storages[key] = (storage_type.dtype, numel)
        return key


def read_state_dict(data, source="<bytes>"):
    """The state dict in `data` (a legacy-format `.pth` file or checkpoint) as
    {name: numpy array}.

    Raises UserError naming `source` if the bytes are not such a file.
    """
    if data[:2] == b"PK":
        raise UserError("this is PyTorch's zip format (1.6+); only the legacy format is read",
                        source)
    stream = io.BytesIO(data)
    try:
        # Every pickle goes through the restricted unpickler, the small ones too.
        if _StateDictUnpickler(stream).load() != _LEGACY_MAGIC:
            raise UserError("not a PyTorch legacy state dict (wrong magic number)", source)
        _StateDictUnpickler(stream).load()  # protocol version
        sys_info = _StateDictUnpickler(stream).load()
        if not sys_info.get("little_endian", True):
            raise UserError("big-endian PyTorch files are not supported", source)
        unpickler = _StateDictUnpickler(stream)
        state = unpickler.load()
        if "state_dict" in state:  # a training checkpoint
            state = state["state_dict"]
        storage_keys = _StateDictUnpickler(stream).load()
        buffers = {key: _read_storage(stream, *unpickler.storages[key]) for key in storage_keys}
        return {name: _view(buffers[ref.storage], ref) for name, ref in state.items()}
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError,
            AttributeError, IndexError, struct.error) as e:
        raise UserError(f"corrupt or unsupported PyTorch weight file: {e}", source) from e


def _read_storage(stream, dtype, numel):
    (count,) = struct.unpack("<q", stream.read(8))
    if count != numel:
        raise ValueError(f"storage holds {count} elements, expected {numel}")
    raw = stream.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise ValueError("file ends inside a storage")
    return np.frombuffer(raw, dtype=dtype)


def _view(buffer, ref):
    """Copy one tensor out of its storage, honouring offset and strides."""
    itemsize = buffer.dtype.itemsize
    needed = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1
    if min(ref.size, default=1) > 0 and needed > buffer.size:
        raise ValueError(f"tensor of size {ref.size} overruns its storage")
    view = np.lib.stride_tricks.as_strided(
        buffer[ref.offset:], shape=ref.size, strides=[s * itemsize for s in ref.stride])
    return np.array(view, order="C")
