"""Engines that run a feature module on batches of images.

An engine is a callable: float32 `[N, H, W, 3]` images in [0, 1] -> `[N, D]` vectors.

On a laptop CPU the module's forward pass is nearly all of a run's cost, and the engine
is what decides it: TensorFlow runs MobileNetV2 at about 43 images/s on 2 cores, the
same network converted to TFLite and run by XNNPACK (through LiteRT, TFLite's maintained
runtime) four to six times as fast. So the default is the TFLite engine, but only where
it computes the same vectors as TensorFlow (the reference, and what the exported frozen
graph runs): `make_engine` checks that on a probe batch and falls back to TensorFlow
otherwise.
"""

import concurrent.futures
import logging
import os
import queue

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from multilabel.base import storage
from multilabel.base.errors import UserError
from multilabel.features.feature_modules import image_size, load_module
from multilabel.base.quiet_start import captured_stderr

logger = logging.getLogger(__name__)

KINDS = ("auto", "tflite", "tensorflow")
# Largest relative difference ||tflite - tensorflow|| / ||tensorflow|| of one vector that
# still counts as the same vector.
TOLERANCE = 1e-4
TFLITE_FILE = "module.tflite"
PROBE_IMAGES = 2
# Images per TFLite invoke: one at a time ran 15 to 30 % faster than 4, and faster still
# than 32, on MobileNetV2 and 320 scene images: a larger batch's activations spill out of
# the CPU's caches.
INVOKE_IMAGES = 1


class TensorFlowEngine:
    """The SavedModel run eagerly by TensorFlow: the reference every engine must match."""

    name = "tensorflow"

    def __init__(self, module_path):
        self._module = load_module(module_path)

    def __call__(self, images):
        return np.asarray(self._module(tf.convert_to_tensor(images, tf.float32)))


class TFLiteEngine:
    """A TFLite model run by LiteRT's XNNPACK on several single-thread interpreters.

    One interpreter per core, each on one thread, beats one interpreter spread over every
    core: XNNPACK's threads wait for each other after every layer, so one preempted
    thread (by image decoding, or another process) stalls them all, while single-thread
    interpreters never wait. A call runs on one free interpreter, so callers use every
    core by calling from one thread per interpreter, as the bottleneck pipeline's workers
    do; a caller that makes one call at a time (Beam's shared model) asks for
    `split_batches`, and each call then spreads its batch over every interpreter. An
    interpreter runs INVOKE_IMAGES images per invoke. How a batch is split does not change
    a vector: MobileNetV2's came out the same to the bit in batches of 1 to 16.
    """

    name = "tflite"

    def __init__(self, model_content, interpreters=None, threads=1,
                 invoke_images=INVOKE_IMAGES, split_batches=False):
        self.parallelism = interpreters or cores()
        self._invoke_images = invoke_images
        self._free = queue.SimpleQueue()
        for _ in range(self.parallelism):
            self._free.put(_Interpreter(model_content, threads))
        self._helpers = concurrent.futures.ThreadPoolExecutor(
            self.parallelism - 1, thread_name_prefix="tflite") \
            if split_batches and self.parallelism > 1 else None

    def __call__(self, images):
        images = np.ascontiguousarray(images, np.float32)
        held = [self._free.get()]
        while self._helpers and len(held) < min(len(images), self.parallelism):
            try:
                held.append(self._free.get_nowait())
            except queue.Empty:
                break
        parts = np.array_split(images, len(held))
        others = [self._helpers.submit(self._run, interpreter, part)
                  for interpreter, part in zip(held[1:], parts[1:])]
        try:
            first = self._run(held[0], parts[0])
            return np.concatenate([first] + [f.result() for f in others])
        finally:
            # An interpreter goes back only once nothing runs on it (an interrupt can
            # leave this call while a helper still does).
            concurrent.futures.wait(others)
            for interpreter in held:
                self._free.put(interpreter)

    def _run(self, interpreter, images):
        step = self._invoke_images
        return np.concatenate([interpreter(images[i:i + step])
                               for i in range(0, len(images), step)])


class _Interpreter:
    """One LiteRT interpreter: a batch in, its vectors out."""

    def __init__(self, model_content, threads):
        # The default op resolver applies the XNNPACK delegate to every float op it can.
        self._interpreter = Interpreter(model_content=model_content, num_threads=threads)
        # The first tensor plan applies XNNPACK, which announces itself on stderr with an
        # INFO line from C++; plan once here, quietly (a failure still shows the lines).
        with captured_stderr():
            self._interpreter.allocate_tensors()
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape = tuple(details["shape"])

    def __call__(self, images):
        if images.shape != self._shape:
            # Re-planning the tensors costs microseconds; XNNPACK keeps its packed weights.
            self._interpreter.resize_tensor_input(self._input, images.shape)
            self._interpreter.allocate_tensors()
            self._shape = images.shape
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def convert(saved_model_path):
    """A SavedModel (a feature module, or the exported classifier) as a float32 TFLite
    flatbuffer: the project's one TFLite conversion.

    `from_saved_model` on the folder, not `from_concrete_functions`: the latter gives
    NaN outputs for Keras 3 models without any error.
    """
    return tf.lite.TFLiteConverter.from_saved_model(saved_model_path).convert()


def cached_tflite_model(path):
    """The bytes of a kept TFLite model, or None when there is none."""
    return storage.read_bytes(path)


def relative_difference(vectors, reference):
    """The largest ||vectors[i] - reference[i]|| / ||reference[i]|| over the rows."""
    vectors = np.asarray(vectors, np.float64)
    reference = np.asarray(reference, np.float64)
    if vectors.shape != reference.shape:
        return float("inf")
    norms = np.maximum(np.linalg.norm(reference, axis=1), np.finfo(np.float32).tiny)
    return float((np.linalg.norm(vectors - reference, axis=1) / norms).max())


def tflite_model_path(cache_folder):
    """Where the converted module is kept: meant to be the bottleneck cache's folder for
    the module, whose name already depends on the module's content, so a module is
    converted once and another module never reuses its conversion."""
    return storage.join(cache_folder, TFLITE_FILE)


def make_engine(kind, module_path, cache_folder):
    """The engine `kind` names for the module, its TFLite model kept in `cache_folder`.

    "tensorflow" is the reference. "tflite" converts the module (or reuses the kept
    conversion) and raises UserError when it cannot. "auto", the default, uses TFLite
    when its vectors match TensorFlow's within TOLERANCE on a probe batch and falls back
    to TensorFlow, with one log line, when conversion fails or they do not match. A
    conversion is kept (atomically) only once it has matched, so a kept one is used
    without loading TensorFlow's copy of the module again.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of {KINDS}")
    if kind == "tensorflow":
        return TensorFlowEngine(module_path)
    path = tflite_model_path(cache_folder)
    kept = cached_tflite_model(path)
    if kept is not None:
        logger.info("TFLite engine: reusing %s", path)
        return TFLiteEngine(kept)
    try:
        logger.info("Converting %s to TFLite (once per module)", module_path)
        content = convert(module_path)
        engine = TFLiteEngine(content)
    except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        if kind == "tflite":
            raise UserError(f"cannot convert the module to TFLite: {reason}", module_path) from e
        logger.warning("Cannot convert the module to TFLite (%s); using TensorFlow", reason)
        return TensorFlowEngine(module_path)
    reference = TensorFlowEngine(module_path)
    difference = _probe_difference(engine, reference, module_path)
    if difference <= TOLERANCE:
        storage.write_bytes(path, content)
        logger.info("TFLite engine matches TensorFlow (relative difference %.2g); kept in %s",
                    difference, path)
        return engine
    if kind == "tflite":
        logger.warning("The TFLite engine differs from TensorFlow by %.2g (relative), more "
                       "than %g; using it as asked", difference, TOLERANCE)
        return engine
    logger.warning("The TFLite engine differs from TensorFlow by %.2g (relative), more than "
                   "%g; using TensorFlow", difference, TOLERANCE)
    return reference


def _probe_difference(engine, reference, module_path):
    """Relative difference of the two engines on a fixed batch of random images."""
    height, width = image_size(module_path)
    probe = np.random.default_rng(0).random((PROBE_IMAGES, height, width, 3), dtype=np.float32)
    return relative_difference(engine(probe), reference(probe))


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
