"""A feature module cut in two where fine-tuning's layers begin: a frozen bottom, a trained top.

Fine-tuning trains only a module's top layers. Everything below them is frozen, so its
output for an image depends on nothing but the image: computed once per image (and per
cached distortion of it), it serves every epoch, and a training step runs only the top.

The cut is found in the module's own graph, for any TF2 SavedModel whose function reads
its variables with plain `ReadVariableOp`s (the project's modules and Keras-made hub
modules do): the ops that depend on a tuned variable form the top; the cut tensors are
the image-dependent tensors the top consumes from below (one for a cut between blocks,
two where it falls inside a residual block). The bottom and the top are re-imported
from the function's GraphDef into two `tf.function`s. The top reads the tuned variables
through ordinary variable reads, so `tf.GradientTape` sees them; the bottom reads the
frozen ones the same way, so both always run on the variables' current values.
"""

import collections

import tensorflow as tf
from tensorflow.core.framework import graph_pb2


class Cut(collections.namedtuple("Cut", "bottom top shapes")):
    """`bottom(images) -> [cut tensors]`, `top(*cut tensors) -> features`, and each cut
    tensor's shape without the batch dimension."""


def cut_function(function, tuned_variables):
    """`function` (a concrete function: images -> features) cut below `tuned_variables`.

    Returns None where the graph can't be cut here: a variable used otherwise than by
    `ReadVariableOp` (inside a nested function call, say), or tuned variables that the
    output does not depend on.
    """
    if len(function.outputs) != 1:
        return None
    output = function.outputs[0]
    reads = _variable_reads(function)
    if reads is None:
        return None
    tuned = {v.ref() for v in tuned_variables}
    tuned_reads = [op for v, ops in reads.items() if v in tuned for op in ops]
    above = _downstream(tuned_reads)
    if output.op not in above:
        return None
    image = function.inputs[0]
    from_image = _downstream([image.op])
    cut = sorted({t.name: t for op in from_image - above for t in op.outputs
                  if any(c in above for c in t.consumers())}.values(), key=lambda t: t.name)
    names = [t.name for t in cut]
    bottom = _imported(function, names, reads, {image.name: 0})
    top = _imported(function, [output.name], reads, {name: k for k, name in enumerate(names)})
    return Cut(bottom, lambda *tensors: top(*tensors)[0], tuple(tuple(t.shape[1:]) for t in cut))


def _variable_reads(function):
    """{variable ref: its ReadVariableOps in the graph}, or None if a variable's handle is
    used by anything else."""
    placeholders = {id(external): internal for external, internal in function.graph.captures}
    reads = {}
    for variable in function.variables:
        placeholder = placeholders.get(id(variable.handle))
        if placeholder is None:
            return None
        consumers = placeholder.consumers()
        if any(op.type != "ReadVariableOp" for op in consumers):
            return None
        reads[variable.ref()] = consumers
    return reads


def _downstream(ops):
    """`ops` and every op that takes a value computed from one of them (data edges: the
    control edges a tf.function adds only order stateful ops)."""
    seen, stack = set(ops), list(ops)
    while stack:
        op = stack.pop()
        for after in (c for t in op.outputs for c in t.consumers()):
            if after not in seen:
                seen.add(after)
                stack.append(after)
    return seen


def _imported(function, fetches, reads, feeds):
    """A tf.function `(*fed tensors) -> [fetches]`: the part of `function`'s graph that
    `fetches` need, cut at the tensors named in `feeds` (name -> argument position) and
    at the variable reads, which become reads of the variables themselves."""
    graph_def = function.graph.as_graph_def()
    read_outputs = {op.outputs[0].name: ref for ref, ops in reads.items() for op in ops}
    stops = set(feeds) | set(read_outputs)
    pruned = _subgraph(graph_def, fetches, stops)
    used = {_tensor_name(i) for node in pruned.node for i in node.input if not i.startswith("^")}
    used |= set(fetches)
    variables = {ref: ref.deref() for ref in reads}

    def run(*tensors):
        input_map = {name: tensors[k] for name, k in feeds.items() if name in used}
        input_map.update({name: tf.convert_to_tensor(variables[ref])
                          for name, ref in read_outputs.items() if name in used})
        return tf.graph_util.import_graph_def(pruned, input_map=input_map,
                                              return_elements=list(fetches), name="cut")

    return tf.function(run)


def uncut(function, size):
    """The whole of `function` as the top, for a graph `cut_function` can't cut: what is
    cached is then the images themselves, at the module's `size`."""
    return Cut(lambda images: [images], function, (tuple(size) + (3,),))


def _tensor_name(name):
    return name if ":" in name else name + ":0"


def _subgraph(graph_def, fetches, stops):
    """The nodes `fetches` need, walking back from them and stopping at the tensors in
    `stops` (they are fed instead); control inputs to nodes left out are dropped."""
    nodes = {node.name: node for node in graph_def.node}
    keep, stack = set(), [name.split(":")[0] for name in fetches]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        for source in nodes[name].input:
            tensor = _tensor_name(source.lstrip("^"))
            if tensor not in stops:
                stack.append(tensor.split(":")[0])
    pruned = graph_pb2.GraphDef()
    pruned.versions.CopyFrom(graph_def.versions)
    pruned.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name in keep:
            copy = pruned.node.add()
            copy.CopyFrom(node)
            del copy.input[:]
            copy.input.extend(i for i in node.input
                              if not i.startswith("^") or i[1:] in keep)
    return pruned
