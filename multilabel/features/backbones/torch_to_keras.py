"""Move a PyTorch state dict's tensors into the layers of a Keras model.

PyTorch and Keras store the same weights in different layouts (a convolution kernel is
`[out, in, h, w]` in one and `[h, w, in, out]` in the other). A port is trusted only
when every weight of the Keras model came from the file, with the shape it expects, and
every tensor of the file went somewhere; `WeightLoader` checks both.
"""

import numpy as np

from multilabel.base.errors import UserError


class WeightLoader:
    """Sets Keras layers from state-dict tensors, converting PyTorch layouts."""

    def __init__(self, state_dict, source, architecture):
        self._state = state_dict
        self._source = source  # named in every error
        self._architecture = architecture
        self._used = set()
        self._layers_set = set()

    def _take(self, key):
        if key not in self._state:
            raise UserError(f"the weight file has no tensor {key}", self._source)
        self._used.add(key)
        return np.asarray(self._state[key], dtype=np.float32)

    def set(self, model, layer_name, conv=None, depthwise=None, bn=None, dense=None):
        """Give `model`'s layer `layer_name` the tensor(s) named by one keyword.

        `conv` and `depthwise` name a kernel tensor (the layers have no bias), `bn` and
        `dense` a prefix (`<bn>.weight`, `.bias`, `.running_mean`, `.running_var`;
        `<dense>.weight`, `.bias`).
        """
        if conv:  # PyTorch [out, in, h, w] -> Keras [h, w, in, out]
            values = [self._take(conv).transpose(2, 3, 1, 0)]
        elif depthwise:  # PyTorch [channels, 1, h, w] -> Keras [h, w, channels, 1]
            values = [self._take(depthwise).transpose(2, 3, 0, 1)]
        elif bn:  # Keras order: gamma, beta, moving mean, moving variance
            values = [self._take(f"{bn}.{n}") for n in ("weight", "bias", "running_mean",
                                                          "running_var")]
            self._used.add(f"{bn}.num_batches_tracked")  # a training counter, if present
        else:  # PyTorch [out, in] -> Keras [in, out]
            values = [self._take(dense + ".weight").T, self._take(dense + ".bias")]
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise UserError(
                f"layer {layer_name}: the file's tensors have shapes "
                f"{[v.shape for v in values]}, the model expects {expected}", self._source)
        layer.set_weights(values)
        self._layers_set.add(layer_name)

    def check_complete(self, model, ignore=()):
        """Raise UserError unless every layer of `model` that has weights was set and every
        tensor (except those starting with a prefix in `ignore`) was used."""
        unset = [layer.name for layer in model.layers
                 if layer.weights and layer.name not in self._layers_set]
        if unset:  # a mistake in the port, not in the file
            raise AssertionError(f"{self._architecture} layers left unset: {unset}")
        unused = sorted(k for k in self._state
                        if k not in self._used and not k.startswith(tuple(ignore)))
        if unused:
            raise UserError(
                f"the weight file has {len(unused)} tensors this architecture does not use, "
                f"e.g. {unused[0]}: not {self._architecture}?", self._source)
