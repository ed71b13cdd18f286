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
(`StatefulPartitionedCall`), so every function the graph can reach is checked, however
deeply nested, by every route TensorFlow has to call one: a node whose op type names
it; a function-valued attribute (`f`, `then_branch`, `body`, ..., and the attributes
nested in those); and an attribute placeholder (`f: {placeholder: "g"}`), which takes
the caller's value (an attribute walked with the caller) or else the default in the
function's signature (walked with the function). A placeholder naming no attribute of
its function cannot be resolved and is refused, and so is a call cycle: TensorFlow
crashes on a function that calls itself. Functions nothing calls are never run and are
not checked: retrain.py's own exports carry the module's unused save and restore
functions (`SaveV2`, `RestoreV2`).

Nesting is bounded too: TensorFlow sets up every call of a function separately before
its run deadline starts, so 12 functions each calling the next twice (4,096 calls from
3 KB) ran past any --timeout for minutes, and 30 would never end. A graph whose calls,
counted through every level, exceed `MAX_FUNCTION_CALLS` is refused; below it, the
labeller's watchdog (`base.deadline`) bounds the set-up.

Pure logic on the GraphDef protocol buffer: no TensorFlow import.
"""

import collections

from multilabel.base.errors import UserError

# Function calls a graph may make, counted through every level of nesting: far above what
# a frozen image network makes (one call per function, each once); 2**13 doubly nested
# calls would take hours to set up. Below it, set-up is bounded by the watchdog.
MAX_FUNCTION_CALLS = 10_000

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


def ops_in_graph(graph_def, path=None):
    """`{op type: a node that runs it}` over the graph's nodes and every library function
    they can call, directly or through other functions. A node inside a function is
    named `function/node`.

    A function is reached by every route TensorFlow has (`_called_functions`); a call
    cycle, or an attribute placeholder that cannot be resolved, raises `UserError`
    naming `path`, since the ops such a graph runs cannot be known (and TensorFlow
    crashes on recursion rather than failing).
    """
    functions = {f.signature.name: f for f in graph_def.library.function}
    found = {}
    calls = {}  # function ("" for the graph itself) -> the functions it may call
    pending, seen = [("", graph_def.node)], set()
    while pending:
        where, nodes = pending.pop()
        callees = calls.setdefault(where, collections.Counter())
        if where:
            # A placeholder the caller leaves unset takes its signature default, which
            # TensorFlow fills in when it instantiates the function: walked as a call.
            for attr in functions[where].signature.attr:
                callees.update(_functions_named(attr.default_value))
            # The function's own attributes name no function TensorFlow runs today;
            # walked all the same, since an unwalked route is how the check was bypassed.
            for value in functions[where].attr.values():
                callees.update(_functions_named(value))
        declared = {a.name for a in functions[where].signature.attr} if where else set()
        for node in nodes:
            node_name = f"{where}/{node.name}" if where else node.name
            for key, value in node.attr.items():
                _check_placeholders(value, declared, node_name, key, path)
                callees.update(_functions_named(value))
            if node.op in functions:
                callees[node.op] += 1  # a node whose op names a function calls it
            else:
                found.setdefault(node.op, node_name)
        for name in sorted(set(callees) & functions.keys()):
            if name not in seen:
                seen.add(name)
                pending.append((name, functions[name].node_def))
    _refuse_cycles(calls, path)
    _refuse_deep_nesting(calls, path)
    return found


def _refuse_deep_nesting(calls, path):
    """Raise `UserError` when the graph's calls, counted through every level (a function
    called twice by one called twice is four calls), exceed MAX_FUNCTION_CALLS. Run after
    `_refuse_cycles`: the calls form no cycle."""
    total = {}  # function -> the calls one call of it makes, through every level, capped
    pending = [""]
    while pending:
        where = pending[-1]
        waiting = [c for c in calls.get(where, ()) if c in calls and c not in total]
        if waiting:
            pending.extend(waiting)
            continue
        pending.pop()
        total[where] = min(MAX_FUNCTION_CALLS + 1, sum(
            count * (1 + total.get(callee, 0)) for callee, count in calls[where].items()
            if callee in calls))
    if total[""] > MAX_FUNCTION_CALLS:
        raise UserError(f"the graph's functions call each other more than "
                        f"{MAX_FUNCTION_CALLS} times through their nesting, which TensorFlow "
                        "would take minutes or forever to set up; it was not run", path)


def _functions_named(value):
    """Names of the functions an `AttrValue` refers to, including those nested in the
    attributes of a referred function (a `NameAttrList` carries attributes of its own)."""
    return [ref.name for ref in _function_refs(value)]


def _function_refs(value):
    """The `NameAttrList`s in an `AttrValue`, nested ones included."""
    kind = value.WhichOneof("value")
    refs = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
    nested = [inner for ref in refs for v in ref.attr.values() for inner in _function_refs(v)]
    return refs + nested


def _check_placeholders(value, declared, node_name, key, path):
    """Refuse a placeholder (`f: {placeholder: "g"}`) naming no attribute of the function
    it is in: TensorFlow resolves one only from the function's own signature (the
    caller's value, else the default), so any other cannot be known to be safe."""
    placeholders = [value.placeholder] if value.WhichOneof("value") == "placeholder" else []
    for ref in _function_refs(value):
        placeholders.extend(v.placeholder for v in ref.attr.values()
                            if v.WhichOneof("value") == "placeholder")
    for name in placeholders:
        if name not in declared:
            raise UserError(f"node {node_name!r} attribute {key!r} refers to attribute "
                            f"{name!r}, which its function does not declare; the graph "
                            "cannot be checked and was not run", path)


def _refuse_cycles(calls, path):
    """Raise `UserError` naming the first call cycle found (f -> g -> f). Depth first
    without recursion, so that a crafted chain of nested functions cannot exhaust
    Python's stack either."""
    finished = set()
    trail = [""]  # the call path being followed, from the graph itself
    on_trail = set(trail)
    stack = [iter(sorted(calls[""]))]
    while stack:
        callee = next(stack[-1], None)
        if callee is None:
            on_trail.discard(trail[-1])
            finished.add(trail.pop())
            stack.pop()
        elif callee in on_trail:
            cycle = trail[trail.index(callee):] + [callee]
            raise UserError(f"function {callee!r} calls itself ({' -> '.join(cycle)}); "
                            "TensorFlow would crash running it, so the graph was not run", path)
        elif callee not in finished and callee in calls:
            trail.append(callee)
            on_trail.add(callee)
            stack.append(iter(sorted(calls[callee])))


def check_classifier_ops(graph_def, path, allow=()):
    """Raise `UserError` naming every op the graph runs outside `CLASSIFIER_OPS` and
    `allow` (op types the user trusts in this graph), before anything runs it."""
    found = ops_in_graph(graph_def, path)
    unexpected = sorted(set(found) - CLASSIFIER_OPS - set(allow))
    if unexpected:
        named = ", ".join(f"{op} (node {found[op]!r})" for op in unexpected)
        raise UserError(
            f"the graph holds operations an image classifier does not need, which may read "
            f"or write files or run code: {named}; it was not run. If you trust the graph, "
            f"pass --allow_ops {','.join(unexpected)}", path)
