"""The TFLite engine: a TFLite model run by LiteRT on one single-thread interpreter per core.

It serves both the bottleneck pipeline (a feature module converted to TFLite, `engines`)
and labelling (the exported classifier, `labelling.litert_model`). It is kept apart from
`engines`, which imports TensorFlow, and imports only LiteRT and numpy: labelling one
photo must not wait seconds for TensorFlow's import.
"""

import concurrent.futures
import queue

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from multilabel.base.host import cores
from multilabel.base.quiet_start import captured_stderr

# Images per TFLite invoke: one at a time ran 15 to 30 % faster than 4, and faster still
# than 32, on MobileNetV2 and 320 scene images: a larger batch's activations spill out of
# the CPU's caches.
INVOKE_IMAGES = 1


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
        interpreters = [_Interpreter(model_content, threads) for _ in range(self.parallelism)]
        # The declared shapes, e.g. (1, 224, 224, 3) and (1, 5): a labeller reads its
        # image size and class count from them.
        self.input_shape, self.output_shape = interpreters[0].declared_shapes()
        self._free = queue.SimpleQueue()
        for interpreter in interpreters:
            self._free.put(interpreter)
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
        self._shape = self._declared_input = tuple(details["shape"])
        self._declared_output = tuple(self._interpreter.get_output_details()[0]["shape"])

    def declared_shapes(self):
        return self._declared_input, self._declared_output

    def __call__(self, images):
        if images.shape != self._shape:
            # Re-planning the tensors costs microseconds; XNNPACK keeps its packed weights.
            self._interpreter.resize_tensor_input(self._input, images.shape)
            self._interpreter.allocate_tensors()
            self._shape = images.shape
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()
