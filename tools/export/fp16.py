"""float32 ONNX graph → float16 weights and arithmetic, float32 inputs and outputs.

For GPUs (CUDA, TensorRT), where float16 halves the memory and the weight traffic. The interface of
the file stays what docs/export.md says (float32 in, float32 out): a Cast follows each float input
and precedes the output. Inside, every float32 initializer and constant becomes float16, and so does
every Cast to float32, except around the ops kept in float32:

- ReduceL2: the sum of squares of a 1024-wide feature overflows float16 (max 65504) once its values
  pass ~8;
- Clip: its bounds include normalisation's 1e-12, which is 0 in float16 (0/0 for a zero vector).

Those nodes get float32 inputs (Casts inserted) and their outputs are cast back to float16.
The error against the float32 file is measured by export.py --fp16 and recorded in export.json.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FLOAT32 = {"ReduceL2", "Clip"}


def _half(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t)
    if np.isfinite(arr).all() and np.abs(arr).max(initial=0) > 65504:
        raise ValueError(f"tensor {t.name} holds values beyond float16's range")
    out = numpy_helper.from_array(arr.astype(np.float16), t.name)
    return out


def _convert_subgraph(g: onnx.GraphProto) -> None:
    """If/Loop bodies: everything float becomes float16 (their I/O is inside the float16 region)."""
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(_half(t))
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in g.node:
        if node.op_type in KEEP_FLOAT32:
            raise ValueError(f"{node.op_type} inside a subgraph: the float16 conversion does not handle it")
        _convert_node(node)
    del g.value_info[:]


def _convert_node(node: onnx.NodeProto) -> None:
    for a in node.attribute:
        if a.name == "value" and node.op_type in ("Constant", "ConstantOfShape") and a.t.data_type == TensorProto.FLOAT:
            a.t.CopyFrom(_half(a.t))
        elif a.name == "to" and node.op_type == "Cast" and a.i == TensorProto.FLOAT:
            a.i = TensorProto.FLOAT16
        elif a.type == onnx.AttributeProto.GRAPH:
            _convert_subgraph(a.g)
        elif a.type == onnx.AttributeProto.GRAPHS:
            for sub in a.graphs:
                _convert_subgraph(sub)


def convert(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    floats = {i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    kept_inputs: set[str] = set()
    for node in g.node:
        if node.op_type in KEEP_FLOAT32:
            kept_inputs.update(n for n in node.input if n)

    # Weights: float16, except those read only by float32 nodes.
    readers: dict[str, list] = {}
    for node in g.node:
        for n in node.input:
            readers.setdefault(n, []).append(node)
    fp32_initializers = set()
    for i, t in enumerate(g.initializer):
        if t.data_type != TensorProto.FLOAT:
            continue
        if all(r.op_type in KEEP_FLOAT32 for r in readers.get(t.name, [])) and readers.get(t.name):
            fp32_initializers.add(t.name)
            continue
        g.initializer[i].CopyFrom(_half(t))

    new_nodes = []
    # Inputs: float32 at the boundary, float16 inside.
    renamed = {}
    for name in floats:
        inner = name + "_fp16"
        new_nodes.append(helper.make_node("Cast", [name], [inner], to=TensorProto.FLOAT16, name=f"{name}_to_fp16"))
        renamed[name] = inner
    counter = 0
    for node in g.node:
        for k, n in enumerate(node.input):
            if n in renamed:
                node.input[k] = renamed[n]
        _convert_node(node)
        if node.op_type in KEEP_FLOAT32:
            # float16 → float32 in front of every float input, float32 → float16 after every output.
            for k, n in enumerate(node.input):
                if not n or n in fp32_initializers:
                    continue
                counter += 1
                cast = f"{n}_fp32_{counter}"
                new_nodes.append(helper.make_node("Cast", [n], [cast], to=TensorProto.FLOAT, name=f"cast_fp32_{counter}"))
                node.input[k] = cast
            new_nodes.append(node)
            for k, n in enumerate(node.output):
                counter += 1
                raw = f"{n}_fp32out_{counter}"
                node.output[k] = raw
                new_nodes.append(helper.make_node("Cast", [raw], [n], to=TensorProto.FLOAT16, name=f"cast_fp16_{counter}"))
            continue
        new_nodes.append(node)
    # Output: back to float32 under its own name.
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = out.name + "_fp16"
        for node in new_nodes:
            for k, n in enumerate(node.output):
                if n == out.name:
                    node.output[k] = inner
            for k, n in enumerate(node.input):
                if n == out.name:
                    node.input[k] = inner
        new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT, name=f"{out.name}_to_fp32"))
    del g.node[:]
    g.node.extend(new_nodes)
    # Intermediate shapes/types torch recorded are float32: drop them, ONNX Runtime infers its own.
    del g.value_info[:]
    return model
