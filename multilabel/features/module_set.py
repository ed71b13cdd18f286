"""Several feature modules used as one (`--tfhub_module A,B[,C]`).

A module set behaves as ONE feature module whose vector is the concatenation of its
members' vectors, so every stage after it (training, thresholds, export, label_image.py)
runs unchanged:

  * Its input is float32 `[N, H, W, 3]` in [0, 1] at the largest height and width any
    member asks for. Each image is decoded once, at that size, for all members.
  * A member that asks for another size gets the images resized inside TensorFlow
    (`resize_for`, bilinear), in training and in the exported graph alike, so it sees
    the same pixels in both: the promise of identical preprocessing holds for sets too.
  * Bottlenecks are cached per member, under the member's own key. For a resized member
    the key also names the size it was decoded at and the resize: those vectors come
    from other pixels than the member alone (decoded straight at its size) would see,
    so the two must never share a cache entry.
  * For export the set is saved once as a SavedModel of its own (all members, the
    resizes and the concatenation) under `<model_dir>/combinations/`: the frozen graph,
    the SavedModel and the TFLite export take it like any module, with one `Placeholder`.

A set of one module is exactly the single module: the same cache key, the same engine,
the same exported graph.
"""

import collections
import hashlib
import logging
import os

import numpy as np
import tensorflow as tf

from multilabel.base import atomic
from multilabel.features import bottlenecks, feature_modules
from multilabel.features.backbones.saved_feature_module import is_saved_model
from multilabel.features.engines import make_engine
from multilabel.base.errors import UserError
from multilabel.features.input_pipeline import feature_batches

logger = logging.getLogger(__name__)

COMBINATIONS_DIR = "combinations"
# Part of a resized member's cache key and of a combination's folder name: change it
# whenever `resize_for` changes what pixels a member sees.
RESIZE_VERSION = "tf-resize-bilinear-v1"


class Member(collections.namedtuple("Member",
                                     "handle path height width key engine dim engine_key")):
    """One module of a set: its folder, its own input size, its cache key and engine.

    `engine` takes images at the SET's input size and resizes them where the member
    asks for another size. `engine_key` names the cache folder where the module's
    TFLite conversion is kept (the module's own key, also for a resized member), so
    that a Beam worker loads the conversion the launching process made.
    """


class ModuleSet(collections.namedtuple("ModuleSet", "path height width engine dim members")):
    """The set as a run uses it, in the shape of one module: the SavedModel to export
    (`path`), its input size, an engine giving the concatenated vectors and their length."""


def load_module_set(handles, model_dir, bottleneck_dir, engine_kind):
    """The modules `handles` name, resolved and ready to compute bottlenecks.

    Raises UserError when a handle can't be resolved or two handles name the same module
    (by content: a URL and the local module it falls back to, say).
    """
    paths = [feature_modules.resolve_module(h, model_dir) for h in handles]
    fingerprints = [feature_modules.module_fingerprint(p) for p in paths]
    for i, fingerprint in enumerate(fingerprints):
        if fingerprint in fingerprints[:i]:
            raise UserError(f"--tfhub_module names one module twice: {handles[i]!r} is the "
                            f"same module as {handles[fingerprints.index(fingerprint)]!r}")
    sizes = [feature_modules.image_size(p) for p in paths]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    members = tuple(_member(handle, path, fingerprint, size, (height, width), bottleneck_dir,
                            engine_kind)
                    for handle, path, fingerprint, size in zip(handles, paths, fingerprints, sizes))
    if len(members) == 1:
        (only,) = members
        return ModuleSet(only.path, height, width, only.engine, only.dim, members)
    engine = _Concatenation([m.engine for m in members])
    dim = sum(m.dim for m in members)
    path = _combination(members, (height, width), fingerprints, model_dir)
    logger.info("Module set of %d: %d x %d images -> %d features (%s)", len(members), height,
                width, dim, " + ".join(str(m.dim) for m in members))
    return ModuleSet(path, height, width, engine, dim, members)


def resize_for(images, size):
    """`images` `[N, H, W, 3]` resized to `size` (height, width) for a member, or as they are.

    Bilinear with half-pixel centres (`tf.image.resize`'s default): one TensorFlow op,
    the same kernel eagerly (bottlenecks) and in the exported graph, and a TFLite
    builtin. Antialiasing would be kinder to large reductions, but its op is not one
    TFLite runs without TensorFlow's own kernels. Fine-tuning and the Beam workers
    resize with it too.
    """
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.image.resize(images, size, method="bilinear")


def member_key(fingerprint, size, input_size):
    """The cache sub-folder name of a module of a set whose input is `input_size`.

    At its own size this is the module's key alone (`bottlenecks.module_key`), so a set
    and a single-module run share those vectors. Otherwise the key names the whole
    chain (decoded at `input_size`, then resized by `resize_for` to `size`).
    """
    if tuple(size) == tuple(input_size):
        return bottlenecks.module_key(fingerprint, *size)
    chain = (f"{fingerprint}|{input_size[0]}x{input_size[1]}|{bottlenecks.PREPROCESSING_VERSION}"
             f"|{RESIZE_VERSION}|{size[0]}x{size[1]}")
    return hashlib.sha256(chain.encode()).hexdigest()[:16]


def _member(handle, path, fingerprint, size, input_size, bottleneck_dir, engine_kind):
    key = member_key(fingerprint, size, input_size)
    # A module's TFLite conversion does not depend on how its images were prepared, so
    # it is kept under the module's own key and shared with runs of the module alone.
    own_key = bottlenecks.module_key(fingerprint, *size)
    engine = make_engine(engine_kind, path, os.path.join(bottleneck_dir, own_key))
    dim = engine(np.zeros([1, *size, 3], np.float32)).shape[1]
    logger.info("Module %s: %d x %d images -> %d features (%s engine)", path, *size, dim,
                engine.name)
    if tuple(size) != tuple(input_size):
        logger.info("Module %s takes the set's %d x %d images resized to %d x %d", handle,
                    *input_size, *size)
        engine = _Resizing(engine, size)
    return Member(handle, path, size[0], size[1], key, engine, dim, own_key)


class _Resizing:
    """An engine fed images at the set's size: resizes them as the exported graph does."""

    def __init__(self, engine, size):
        self._engine = engine
        self._size = tuple(size)
        self.name = engine.name

    def __call__(self, images):
        return self._engine(np.asarray(resize_for(tf.convert_to_tensor(images, tf.float32),
                                                  self._size)))


class _Concatenation:
    """The members' engines side by side: one batch in, the concatenated vectors out."""

    def __init__(self, engines):
        self._engines = engines
        self.name = " + ".join(e.name for e in engines)

    def __call__(self, images):
        return np.concatenate([engine(images) for engine in self._engines], axis=1)


def set_bottlenecks(paths, module_set, bottleneck_dir, batch_size):
    """Every member's bottlenecks for `paths`, concatenated: `[len(paths), module_set.dim]`.

    Each member's vectors are read from and stored in its own cache. The vectors that
    any member lacks are computed first in one pass that decodes each image once.
    """
    caches = [bottlenecks.BottleneckCache(bottleneck_dir, m.key, m.dim)
              for m in module_set.members]
    if len(caches) > 1:  # one module alone decodes each image once anyway, below
        _fill_caches(paths, module_set, caches, batch_size)
    return np.concatenate([
        bottlenecks.cached_bottlenecks(
            paths, cache, lambda todo, m=member: feature_batches(
                m.engine, todo, module_set.height, module_set.width, batch_size),
            report_duplicates=k == 0)  # once, not once per member
        for k, (member, cache) in enumerate(zip(module_set.members, caches))], axis=1)


def _fill_caches(paths, module_set, caches, batch_size):
    """Compute and store what any member's cache lacks, decoding each image once.

    Images are grouped by the members that lack them (usually one group: all members, or
    a member new to a cached set); each group goes through the pipeline once, its
    workers running those members' engines on each decoded batch.
    """
    groups = {}  # indices of the members lacking an image -> {content hash: a path}
    for path in paths:
        digest = bottlenecks.content_hash(path)
        lacking = tuple(k for k, c in enumerate(caches) if c.load(digest) is None)
        if lacking:
            groups.setdefault(lacking, {}).setdefault(digest, path)
    for lacking, todo in groups.items():
        members = [module_set.members[k] for k in lacking]
        logger.info("Computing bottlenecks of %d images for %s, decoded once for all of them",
                    len(todo), ", ".join(m.handle for m in members))
        edges = np.cumsum([m.dim for m in members])[:-1]
        digests = iter(todo)
        for vectors in feature_batches(_Concatenation([m.engine for m in members]),
                                       list(todo.values()), module_set.height,
                                       module_set.width, batch_size):
            for row in vectors:
                digest = next(digests)
                for k, part in zip(lacking, np.split(row, edges)):
                    caches[k].store(digest, part)


class _Combination(tf.Module):
    """The members, each resizing the set's images as it needs, concatenated: `[N, D]`."""

    def __init__(self, member_paths, sizes, input_size):
        super().__init__(name="module_set")
        # Tracked, so that saving the combination saves every member's variables (and
        # `saved_members` finds them in the loaded set).
        self.members = [feature_modules.load_module(p) for p in member_paths]
        self._sizes = [tuple(s) for s in sizes]
        self.__call__ = tf.function(
            self._features,
            input_signature=[tf.TensorSpec([None, *input_size, 3], tf.float32, name="images")])

    def _features(self, images):
        return tf.concat([module(resize_for(images, size))
                          for module, size in zip(self.members, self._sizes)], axis=1)


def saved_members(module):
    """The members of a loaded module set saved by `_combination`, in order (restored
    as the tracked `members` list); `(module,)` for a module of its own."""
    members = getattr(module, "members", None)
    return tuple(members) if members else (module,)


def _combination(members, input_size, fingerprints, model_dir):
    """The set saved as one feature-vector SavedModel, built once per set and size.

    Its folder is named by the members' contents, sizes and order (the order of the
    concatenation, which the trained layer's weights follow) and the resize, so a
    changed member or resize gets a new one. Built in a temporary folder and renamed.
    """
    text = "|".join([f"{f}@{m.height}x{m.width}" for f, m in zip(fingerprints, members)]
                    + [f"{input_size[0]}x{input_size[1]}", RESIZE_VERSION])
    target = os.path.join(model_dir, COMBINATIONS_DIR,
                          hashlib.sha256(text.encode()).hexdigest()[:16])
    if is_saved_model(target):
        return target
    logger.info("Saving the module set %s as one module in %s",
                ", ".join(m.handle for m in members), target)
    # A concurrent run may have saved the same set first: its folder is kept.
    with atomic.atomic_folder(target, keep_existing=is_saved_model) as tmp:
        combination = _Combination([m.path for m in members],
                                   [(m.height, m.width) for m in members], input_size)
        tf.saved_model.save(combination, tmp, signatures={
            "serving_default": combination.__call__.get_concrete_function()})
    return target
