"""The float32 TFLite classifier derived from the module's TFLite model, without a second
conversion.

The bottleneck engine already converted the feature module to TFLite once, and kept it
only after it matched TensorFlow (features.engines). The exported classifier is that
network plus the trained layer: a FULLY_CONNECTED with the weights and biases, then a
LOGISTIC, which is exactly what the converter makes of the SavedModel's `matmul + bias
-> sigmoid` (the same ops, weights `[classes, features]`). Appending those two ops to the
kept model takes a fraction of a second, where writing a SavedModel of the whole network
and converting it took most of a re-run's export stage. The result is checked against
the frozen graph like a converted one (export.stage), so a wrong derivation is caught,
not shipped.

The flatbuffer is edited with LiteRT's generated schema (`ai_edge_litert.schema_py_generated`),
and packed by tflite_metadata.pack, as the metadata is.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as tflite_schema

from multilabel.export import tflite_metadata

# The classifier's signature, as formats._ServingModel's SavedModel names it.
INPUT_NAME, OUTPUT_NAME = b"image", b"prediction"


def with_final_layer(module_tflite, weights, biases):
    """The TFLite model `module_tflite` (bytes: images -> features `[N, D]`) with the
    trained layer `weights` `[D, C]`, `biases` `[C]` and a sigmoid appended: images ->
    probabilities `[N, C]`. Raises ValueError for a model that is not one subgraph with
    one float output of D features."""
    model = tflite_schema.ModelT.InitFromPackedBuf(bytearray(module_tflite), 0)
    weights = np.asarray(weights, np.float32)
    biases = np.asarray(biases, np.float32)
    if len(model.subgraphs) != 1 or len(model.subgraphs[0].outputs) != 1:
        raise ValueError("the module's TFLite model is not one subgraph with one output")
    graph = model.subgraphs[0]
    features = graph.tensors[graph.outputs[0]]
    if features.type != tflite_schema.TensorType.FLOAT32 or list(features.shape[1:]) != [
            weights.shape[0]]:
        raise ValueError(f"the module's TFLite output {list(features.shape)} is not "
                         f"[N, {weights.shape[0]}] float features")
    batch, batch_signature = int(features.shape[0]), _batch_signature(features)
    num_classes = weights.shape[1]
    kernel = _constant(model, graph, b"final_weights", np.ascontiguousarray(weights.T))
    bias = _constant(model, graph, b"final_biases", biases)
    logits = _tensor(graph, b"logits", [batch, num_classes], [batch_signature, num_classes])
    probs = _tensor(graph, b"final_result", [batch, num_classes],
                    [batch_signature, num_classes])
    fully_connected = tflite_schema.OperatorT()
    fully_connected.opcodeIndex = _opcode(model, tflite_schema.BuiltinOperator.FULLY_CONNECTED)
    fully_connected.inputs = [graph.outputs[0], kernel, bias]
    fully_connected.outputs = [logits]
    fully_connected.builtinOptionsType = tflite_schema.BuiltinOptions.FullyConnectedOptions
    fully_connected.builtinOptions = tflite_schema.FullyConnectedOptionsT()
    sigmoid = tflite_schema.OperatorT()
    sigmoid.opcodeIndex = _opcode(model, tflite_schema.BuiltinOperator.LOGISTIC)
    sigmoid.inputs, sigmoid.outputs = [logits], [probs]
    graph.operators += [fully_connected, sigmoid]
    graph.outputs = [probs]
    for signature in model.signatureDefs or ():
        signature.inputs[0].name = INPUT_NAME
        signature.outputs = [_tensor_map(OUTPUT_NAME, probs)]
    return tflite_metadata.pack(model, len(module_tflite) + weights.nbytes)


def _batch_signature(tensor):
    signature = tensor.shapeSignature
    return int(signature[0]) if signature is not None and len(signature) else int(
        tensor.shape[0])


def _constant(model, graph, name, array):
    buffer = tflite_schema.BufferT()
    buffer.data = np.frombuffer(array.tobytes(), np.uint8)
    model.buffers.append(buffer)
    return _tensor(graph, name, list(array.shape), None, len(model.buffers) - 1)


def _tensor(graph, name, shape, signature, buffer=0):
    tensor = tflite_schema.TensorT()
    tensor.name, tensor.type, tensor.buffer = name, tflite_schema.TensorType.FLOAT32, buffer
    tensor.shape = np.array(shape, np.int32)
    if signature is not None:
        tensor.shapeSignature = np.array(signature, np.int32)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _opcode(model, builtin):
    """The index of `builtin`'s operator code in the model, added where missing."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = tflite_schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _tensor_map(name, index):
    entry = tflite_schema.TensorMapT()
    entry.name, entry.tensorIndex = name, index
    return entry
