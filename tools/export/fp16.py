"""float32 ONNX graph → float16 weights and arithmetic, float32 inputs and outputs.

For GPUs (CUDA, TensorRT), where float16 halves the memory and the weight traffic. The interface of
the file stays what docs/export.md says (float32 in, float32 out). Inside, every node computes in
float16, except:

- ReduceL2: the sum of squares of a 1024-wide feature overflows float16 (max 65504) once its values
  pass ~8;
- Clip: its bounds include normalisation's 1e-12 and dB floors such as 1e-10, which are 0 in float16;
- Log: log of a float16-rounded 0 is -inf;
- every node under an `Export.float32_scopes` module (e.g. an STFT whose power exceeds 65504).

Each value keeps the precision of the node that makes it; a Cast is inserted only where a value
crosses between the float32 and float16 regions. Initializers become float16 unless only float32
nodes read them. The error against the float32 file is measured by export.py --fp16 and recorded.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FLOAT32 = {"ReduceL2", "Clip", "Log"}
FLOAT = TensorProto.FLOAT
HALF = TensorProto.FLOAT16
# Inputs that stay float32 whatever the node computes in (Resize's roi and scales).
FLOAT32_INPUTS = {("Resize", 1), ("Resize", 2)}


def _half(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t)
    if arr.size and np.isfinite(arr).all() and np.abs(arr).max() > 65504:
        raise ValueError(f"{repr(t.name) if t.name else 'a constant'} holds {np.abs(arr).max():.3g}, beyond float16's "
                         f"range (65504)")
    return numpy_helper.from_array(arr.astype(np.float16), t.name)


def _convert_subgraph(g: onnx.GraphProto) -> None:
    """If/Loop bodies of a float16 node: everything float becomes float16."""
    for i, t in enumerate(g.initializer):
        if t.data_type == FLOAT:
            g.initializer[i].CopyFrom(_half(t))
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == FLOAT:
            vi.type.tensor_type.elem_type = HALF
    for node in g.node:
        if node.op_type in KEEP_FLOAT32:
            raise ValueError(f"{node.op_type} inside a subgraph: the float16 conversion does not handle it")
        _to_half(node)
    del g.value_info[:]


def _to_half(node: onnx.NodeProto) -> None:
    """A node that computes in float16: its float constants and casts follow."""
    for a in node.attribute:
        if a.name == "value" and node.op_type in ("Constant", "ConstantOfShape") and a.t.data_type == FLOAT:
            a.t.CopyFrom(_half(a.t))
        elif a.name == "to" and node.op_type == "Cast" and a.i == FLOAT:
            a.i = HALF
        elif a.type == onnx.AttributeProto.GRAPH:
            _convert_subgraph(a.g)
        elif a.type == onnx.AttributeProto.GRAPHS:
            for sub in a.graphs:
                _convert_subgraph(sub)


def _scope_prefixes(scopes: Iterable[str]) -> tuple[str, ...]:
    # torch names nodes by module path: module `a.b.3` → node names starting "/a/b.3/".
    out = []
    for s in scopes:
        parts = s.split(".")
        merged = []
        for p in parts:  # digits stay attached to the previous name ("blocks.0")
            if p.isdigit() and merged:
                merged[-1] += "." + p
            else:
                merged.append(p)
        out.append("/" + "/".join(merged) + "/")
    return tuple(out)


def convert(model: onnx.ModelProto, float32_scopes: Iterable[str] = ()) -> onnx.ModelProto:
    g = model.graph
    prefixes = _scope_prefixes(float32_scopes)
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    if any(o and o not in types for n in g.node for o in n.output):
        inferred = onnx.shape_inference.infer_shapes(model)
        types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info})

    def full(node) -> bool:
        return node.op_type in KEEP_FLOAT32 or node.name.startswith(prefixes)

    readers: dict[str, list] = {}
    for node in g.node:
        for n in node.input:
            readers.setdefault(n, []).append(node)

    # Where each float value lives: float32 (True) or float16 (False).
    home: dict[str, bool] = {i.name: True for i in g.input if types.get(i.name) == FLOAT}
    for i, t in enumerate(g.initializer):
        if t.data_type != FLOAT:
            continue
        readers_of = readers.get(t.name, [])
        if readers_of and all(full(r) for r in readers_of):
            home[t.name] = True
        else:
            g.initializer[i].CopyFrom(_half(t))
            home[t.name] = False
    for node in g.node:
        for o in node.output:
            if types.get(o) == FLOAT:
                home[o] = full(node)

    nodes, casts, counter = [], {}, 0

    def as_precision(name: str, float32: bool) -> str:
        nonlocal counter
        key = (name, float32)
        if key not in casts:
            counter += 1
            out = f"{name}__{'fp32' if float32 else 'fp16'}"
            nodes.append(helper.make_node("Cast", [name], [out], to=FLOAT if float32 else HALF, name=f"fp16_cast_{counter}"))
            casts[key] = out
        return casts[key]

    for node in g.node:
        want32 = full(node)
        if not want32:
            _to_half(node)
        for k, n in enumerate(node.input):
            if not n or n not in home:
                continue
            need32 = want32 or (node.op_type, k) in FLOAT32_INPUTS
            if home[n] != need32:
                node.input[k] = as_precision(n, need32)
        nodes.append(node)
    for out in g.output:
        if out.type.tensor_type.elem_type == FLOAT and not home.get(out.name, True):
            inner = out.name + "__fp16"
            for node in nodes:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"{out.name}_to_fp32"))
    del g.node[:]
    g.node.extend(nodes)
    # The recorded intermediate types are float32's; ONNX Runtime infers the new ones.
    del g.value_info[:]
    return model
