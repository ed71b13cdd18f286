"""Which operations a frozen graph runs, and whether an image classifier needs them.

A GraphDef is a program, not a table of weights: besides arithmetic it can hold
operations that read and write files (`ReadFile`, `WriteFile`, `MatchingFiles`,
`SaveV2`/`RestoreV2`, `ImmutableConst` mapping a file, dataset readers, summary
writers), print to a file (`PrintV2`), or call back into Python (`PyFunc`). Running a
graph from elsewhere with `label_image.py --graph` would run all of them, so the graph
is checked first.

An ALLOW-list, not a deny-list. TensorFlow registers well over a thousand operations
and adds more each release; a deny-list (TensorFlow's own `saved_model_cli run` refuses
only `WriteFile`, `ReadFile` and `PrintV2`) lets through every file or system operation
it does not name. An image classifier needs a small and stable set: arithmetic,
convolutions, pooling, normalisation, activations, resizing, shape plumbing and the
calls into the graph's own functions, none of which reaches outside the process's
memory. `CLASSIFIER_OPS` holds what retrain.py exports for every module the project
builds (MobileNetV2, EfficientNet-Lite0, TF2 and TF1 Hub format SavedModels), checked
by the tests against real exports, plus the usual layers of other image networks, so
that a frozen classifier from elsewhere passes too: Keras's ResNet50, InceptionV3,
EfficientNetB0, EfficientNetV2B0, MobileNetV3Small and ConvNeXtTiny, exported the way
retrain.py exports a module, all pass; so would transposed convolutions and quantisation
stand-ins. An operation missing
here costs a user one flag (`label_image.py --allow_ops NAME`); a file operation missing
from a deny-list could cost them their files.

Functions count too: a frozen TF2 graph runs its network inside library functions
(`StatefulPartitionedCall`), so every function a node can call, through its op type or
any function-valued attribute (`f`, `then_branch`, `body`, ...), is checked, however
deeply nested. Functions nothing calls are never run and are not checked: retrain.py's
own exports carry the module's unused save and restore functions (`SaveV2`,
`RestoreV2`).

Pure logic on the GraphDef protocol buffer: no TensorFlow import.
"""

from multilabel.base.errors import UserError

_GRAPH = {  # feeding, constants, calls into functions, control flow
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp",
    "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Assert",
    "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
    "StatelessWhile", "Case", "StatelessCase", "Switch", "Merge", "Enter", "Exit",
    "NextIteration", "LoopCond", "ControlTrigger",
}
_ARRAY = {  # shapes, slicing, joining, selecting, type changes
    "Shape", "ShapeN", "Size", "Rank", "Reshape", "Squeeze", "ExpandDims", "Concat",
    "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "Transpose",
    "Tile", "Pad", "PadV2", "MirrorPad", "Fill", "ZerosLike", "OnesLike", "Range", "Gather",
    "GatherV2", "GatherNd", "Where", "Select", "SelectV2", "Cast", "BroadcastTo",
    "BroadcastArgs", "BroadcastGradientArgs", "ReverseV2", "SpaceToBatchND",
    "BatchToSpaceND", "SpaceToDepth", "DepthToSpace", "OneHot", "ScatterNd", "Cumsum",
    "TopKV2", "ArgMax", "ArgMin",
}
_MATH = {  # element-wise and reductions
    "Add", "AddV2", "AddN", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "FloorDiv", "FloorMod",
    "Maximum", "Minimum", "Neg", "Abs", "Sign", "Square", "SquaredDifference", "Sqrt", "Rsqrt",
    "Reciprocal", "Exp", "Log", "Log1p", "Pow", "Tanh", "Sigmoid", "Erf", "Erfc", "Floor", "Ceil",
    "Round", "Rint", "Sin", "Cos", "Greater", "GreaterEqual", "Less", "LessEqual", "Equal",
    "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan", "IsFinite", "ClipByValue",
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Mean", "Sum", "Prod",
    "Max", "Min", "All", "Any",
}
_NN = {  # layers of image networks
    "Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "BiasAdd",
    "BiasAddV1", "MaxPool", "MaxPoolV2", "MaxPool3D", "AvgPool", "AvgPool3D",
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "BatchNormWithGlobalNormalization", "LRN", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu",
    "Softplus", "Softsign", "Softmax", "LogSoftmax", "L2Loss",
    "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
}
_IMAGE = {  # resizing and decoding tensors already in memory (older graphs decode JPEG)
    "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea",
    "ScaleAndTranslate", "CropAndResize", "DecodeJpeg", "DecodePng", "DecodeBmp", "DecodeGif",
    "DecodeImage", "AdjustContrastv2", "RGBToHSV", "HSVToRGB",
}

# Operations a frozen image classifier may run; none touches a file, the network or Python.
CLASSIFIER_OPS = frozenset(_GRAPH | _ARRAY | _MATH | _NN | _IMAGE)


def ops_in_graph(graph_def):
    """`{op type: a node that runs it}` over the graph's nodes and every library function
    they can call, directly or through other functions. A node inside a function is
    named `function/node`."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    found = {}
    pending, seen = [("", graph_def.node)], set()
    while pending:
        where, nodes = pending.pop()
        for node in nodes:
            # A node runs a function when its op type names one, or through an attribute.
            for name in (node.op, *(n for v in node.attr.values() for n in _functions_named(v))):
                if name in functions and name not in seen:
                    seen.add(name)
                    pending.append((name, functions[name].node_def))
            if node.op not in functions:
                found.setdefault(node.op, f"{where}/{node.name}" if where else node.name)
    return found


def _functions_named(value):
    """Names of the functions an `AttrValue` refers to, including those nested in the
    attributes of a referred function (a `NameAttrList` carries attributes of its own)."""
    kind = value.WhichOneof("value")
    refs = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
    names = []
    for ref in refs:
        names.append(ref.name)
        for inner in ref.attr.values():
            names.extend(_functions_named(inner))
    return names


def check_classifier_ops(graph_def, path, allow=()):
    """Raise `UserError` naming every op the graph runs outside `CLASSIFIER_OPS` and
    `allow` (op types the user trusts in this graph), before anything runs it."""
    found = ops_in_graph(graph_def)
    unexpected = sorted(set(found) - CLASSIFIER_OPS - set(allow))
    if unexpected:
        named = ", ".join(f"{op} (node {found[op]!r})" for op in unexpected)
        raise UserError(
            f"the graph holds operations an image classifier does not need, which may read "
            f"or write files or run code: {named}; it was not run. If you trust the graph, "
            f"pass --allow_ops {','.join(unexpected)}", path)
