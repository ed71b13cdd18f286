"""Every route by which a graph can call a function is checked (issue 22).

The graphs are written in the GraphDef text format, as an attacker would craft them:
TensorFlow's own tracing never makes a function-valued attribute with a default, nor a
function that calls itself. Each is a working 3-class classifier of 4 x 4 images whose
`final_result` depends on a call to `wrapper`.
"""

import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image

import label_image
from multilabel.base.errors import UserError
from multilabel.labelling import graph_ops
from multilabel.labelling.frozen_graph import load_frozen_graph

_FLOAT = 'attr { key: "T" value { type: DT_FLOAT } }'
_MAIN = '''
node { name: "Placeholder" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: -1 } dim { size: 4 } dim { size: 4 }
  dim { size: 3 } } } } }
CALL
node { name: "axes" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } }
  int_val: 1 int_val: 2 } } } }
node { name: "mean" op: "Mean" input: "call" input: "axes" TYPE_T
  attr { key: "Tidx" value { type: DT_INT32 } } }
node { name: "final_result" op: "Sigmoid" input: "mean" TYPE_T }
'''
# A call of `wrapper` on the images, by a call op (with extra attributes) or by its name.
_CALL_OP = '''node { name: "call" op: "StatefulPartitionedCall" input: "Placeholder"
  attr { key: "Tin" value { list { type: DT_FLOAT } } }
  attr { key: "Tout" value { list { type: DT_FLOAT } } }
  attr { key: "f" value { func { name: "wrapper" ATTRS } } } }'''
_CALL_BY_NAME = 'node { name: "call" op: "wrapper" input: "Placeholder" }'


def _writer(target):
    """A function that writes `target`, its write kept by a control output."""
    return f'''function {{
  signature {{ name: "writer" is_stateful: true control_output: "write" }}
  node_def {{ name: "name" op: "Const" attr {{ key: "dtype" value {{ type: DT_STRING }} }}
    attr {{ key: "value" value {{ tensor {{ dtype: DT_STRING tensor_shape {{}}
    string_val: "{target}" }} }} }} }}
  node_def {{ name: "write" op: "WriteFile" input: "name:output:0" input: "name:output:0" }}
  control_ret {{ key: "write" value: "write" }}
}}'''


def _wrapper(attr, callee_attr, extra_nodes=""):
    """`wrapper(x) = x`, after a call whose `f` is `callee_attr`; `attr` declares the
    wrapper's own attributes."""
    return f'''function {{
  signature {{ name: "wrapper" input_arg {{ name: "x" type: DT_FLOAT }}
    output_arg {{ name: "y" type: DT_FLOAT }} is_stateful: true {attr} }}
  node_def {{ name: "run" op: "StatefulPartitionedCall"
    attr {{ key: "Tin" value {{ list {{}} }} }} attr {{ key: "Tout" value {{ list {{}} }} }}
    attr {{ key: "f" value {{ {callee_attr} }} }} }}
  {extra_nodes}
  node_def {{ name: "out" op: "Identity" input: "x" input: "^run" {_FLOAT} }}
  ret {{ key: "y" value: "out:output:0" }}
}}'''


def _graph_def(call, functions, call_attrs=""):
    text = _MAIN.replace("CALL", call.replace("ATTRS", call_attrs)).replace("TYPE_T", _FLOAT)
    text += "library {\n" + "\n".join(functions) + "\n}"
    return text_format.Parse(text, tf.compat.v1.GraphDef())


_DEFAULT_G = 'attr { name: "g" type: "func" default_value { func { name: "writer" } } }'


def _default_valued(target, call):
    """`wrapper` runs its attribute `g` by placeholder; `g` defaults to `writer`."""
    return _graph_def(call, [_writer(target), _wrapper(_DEFAULT_G, 'placeholder: "g"')])


def _labelled(tmp_path, graph_def):
    graph = tmp_path / "graph.pb"
    graph.write_bytes(graph_def.SerializeToString())
    (tmp_path / "output_labels.txt").write_text("a\nb\nc\n")
    image = tmp_path / "red.png"
    Image.new("RGB", (5, 5), (255, 0, 0)).save(image)
    return ["--graph", str(graph), str(image), "--threshold", "0.5", "-q"]


@pytest.mark.parametrize("call", [_CALL_OP, _CALL_BY_NAME], ids=["call_op", "op_names_it"])
def test_a_function_run_by_an_attribute_default_is_checked(tmp_path, capsys, call):
    target = tmp_path / "written.txt"
    argv = _labelled(tmp_path, _default_valued(target, call))
    assert label_image.main(argv) == 2
    assert capsys.readouterr().err.strip().endswith(
        "WriteFile (node 'writer/write'); it was not run. If you trust the graph, pass "
        "--allow_ops WriteFile")
    assert not target.exists()
    # The route is real: allowed by name, TensorFlow fills in the default and writes.
    assert label_image.main(argv + ["--allow_ops", "WriteFile"]) == 0
    assert target.exists()


def test_a_function_passed_by_the_caller_through_a_placeholder_is_checked(tmp_path):
    graph_def = _graph_def(
        _CALL_OP, [_writer(tmp_path / "x"), _wrapper('attr { name: "g" type: "func" }',
                                                     'placeholder: "g"')],
        call_attrs='attr { key: "g" value { func { name: "writer" } } }')
    assert graph_ops.ops_in_graph(graph_def)["WriteFile"] == "writer/write"


def test_a_placeholder_its_function_does_not_declare_is_refused(tmp_path):
    graph_def = _graph_def(_CALL_OP, [_writer(tmp_path / "x"),
                                      _wrapper("", 'placeholder: "nowhere"')])
    with pytest.raises(UserError) as error:
        graph_ops.check_classifier_ops(graph_def, "g.pb")
    assert str(error.value) == (
        "g.pb: node 'wrapper/run' attribute 'f' refers to attribute 'nowhere', which its "
        "function does not declare; the graph cannot be checked and was not run")


def test_beam_label_and_label_image_share_the_check(tmp_path):
    """Both load graphs with `load_frozen_graph`, which refuses before importing."""
    path = tmp_path / "graph.pb"
    path.write_bytes(_default_valued(tmp_path / "x", _CALL_OP).SerializeToString())
    with pytest.raises(UserError, match=r"WriteFile \(node 'writer/write'\)"):
        load_frozen_graph(str(path))


def _self_calling(tmp_path):
    """`wrapper` calls `again`, which calls `again` through a node named by its op."""
    again = '''function {
  signature { name: "again" is_stateful: true }
  node_def { name: "recurse" op: "again" }
}'''
    return _graph_def(_CALL_OP, [again, _wrapper("", 'func { name: "again" }')])


def test_a_function_that_calls_itself_is_refused(tmp_path, capsys):
    argv = _labelled(tmp_path, _self_calling(tmp_path))
    assert label_image.main(argv) == 2  # instead of TensorFlow's SIGSEGV
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"label_image.py: error: {argv[1]}: function 'again' calls itself (again -> again); "
        "TensorFlow would crash running it, so the graph was not run")


def test_a_longer_call_cycle_is_refused(tmp_path):
    """wrapper -> ping -> pong -> ping, the last call through an attribute default."""
    ping = '''function {
  signature { name: "ping" is_stateful: true }
  node_def { name: "call" op: "StatefulPartitionedCall"
    attr { key: "Tin" value { list {} } } attr { key: "Tout" value { list {} } }
    attr { key: "f" value { func { name: "pong" } } } }
}'''
    pong = '''function {
  signature { name: "pong" is_stateful: true
    attr { name: "g" type: "func" default_value { func { name: "ping" } } } }
}'''
    graph_def = _graph_def(_CALL_OP, [ping, pong, _wrapper("", 'func { name: "ping" }')])
    with pytest.raises(UserError, match=r"^g\.pb: function 'ping' calls itself "
                                        r"\(ping -> pong -> ping\)"):
        graph_ops.check_classifier_ops(graph_def, "g.pb")


def test_a_deep_chain_of_functions_is_walked_without_recursion(tmp_path):
    functions = [f'''function {{ signature {{ name: "f{i}" is_stateful: true }}
  node_def {{ name: "n" op: "{f'f{i + 1}' if i < 5000 else 'NoOp'}" }} }}''' for i in range(5001)]
    graph_def = _graph_def(_CALL_OP, functions + [_wrapper("", 'func { name: "f0" }')])
    assert "NoOp" in graph_ops.ops_in_graph(graph_def)


def test_a_function_named_only_in_a_function_attribute_is_walked(tmp_path):
    """No TensorFlow route runs it today; walked anyway, as the cost of missing one is
    a graph that writes files."""
    wrapper = _wrapper("", 'func { name: "nothing" }').replace(
        "function {", 'function {\n  attr { key: "_extra" value { func { name: "writer" } } }', 1)
    nothing = 'function { signature { name: "nothing" } }'
    graph_def = _graph_def(_CALL_OP, [_writer(tmp_path / "x"), nothing, wrapper])
    assert graph_ops.ops_in_graph(graph_def)["WriteFile"] == "writer/write"
