"""Writing one Export as an ONNX file the product accepts.

Opset 17, every input's and the output's leading axis dynamic (`batch`), the output's width written
as a number (torch leaves it symbolic after a normalise, and the product's width check needs it),
weights inside the file up to 2 GB and in `<file>.data` beside it above that (protobuf cannot hold
more). Files appear under their final name only once complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import onnx
import torch

from contract import Export

OPSET = 17
INLINE_LIMIT = 1_800_000_000  # bytes of weights above which they go to external data (protobuf's limit is 2 GiB)


def _weight_bytes(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        if t.HasField("raw_data"):
            total += len(t.raw_data)
        else:
            total += int(np.prod(t.dims)) * 4
    return total


def _set_shapes(model: onnx.ModelProto, exp: Export) -> None:
    for vi in list(model.graph.input) + [model.graph.output[0]]:
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.ClearField("dim_value")
        d0.dim_param = "batch"
    out = model.graph.output[0].type.tensor_type.shape
    if len(out.dim) != 2:
        raise ValueError(f"{exp.file}: the module returns a rank-{len(out.dim)} output; the contract is [batch, {exp.width}]")
    out.dim[1].ClearField("dim_param")
    out.dim[1].dim_value = exp.width


def _save(model: onnx.ModelProto, path: str) -> None:
    """Saves atomically beside `path` (external data above INLINE_LIMIT) after onnx.checker."""
    folder = os.path.dirname(path)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=folder)
    try:
        name = os.path.basename(path)
        staged = os.path.join(tmp, name)
        external = _weight_bytes(model) > INLINE_LIMIT
        if external:
            onnx.save_model(model, staged, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=name + ".data", size_threshold=1024)
        else:
            onnx.save_model(model, staged)
        onnx.checker.check_model(staged, full_check=True)
        if external:
            os.replace(staged + ".data", path + ".data")
        elif os.path.exists(path + ".data"):
            os.remove(path + ".data")  # a stale data file of an earlier, larger export
        os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_bytes(path: str) -> int:
    return os.path.getsize(path) + (os.path.getsize(path + ".data") if os.path.exists(path + ".data") else 0)


def convert_fp16(path: str, float32_scopes=()) -> None:
    """Replaces the float32 file at `path` by its float16 twin (see fp16.py)."""
    from fp16 import convert
    model = onnx.load(path)
    model = convert(model, float32_scopes)
    _save(model, path)


def write(exp: Export, root: str, *, batch: int, seed: int) -> dict:
    """Exports `exp` under `root`; returns facts for export.json (bytes, external data, seconds)."""
    path = os.path.join(root, exp.file)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    t0 = time.time()
    rng = np.random.default_rng(seed)
    example = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in exp.random_inputs(rng, batch))
    names = [i.name for i in exp.inputs]
    tmp = tempfile.mkdtemp(prefix=".export-", dir=folder)
    try:
        raw = os.path.join(tmp, "traced.onnx")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings: batch correctness is checked, not assumed
            torch.onnx.export(exp.module, example, raw, opset_version=OPSET, input_names=names,
                              output_names=[exp.output], do_constant_folding=True,
                              dynamic_axes={**{n: {0: "batch"} for n in names}, exp.output: {0: "batch"}})
        model = onnx.load(raw)  # torch writes one file per tensor beside it above 2 GB; this gathers them
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _set_shapes(model, exp)
    model.producer_name = "freebind tools/export"
    _save(model, path)
    del model
    return {"bytes": file_bytes(path), "external_data": os.path.basename(path) + ".data" if os.path.exists(path + ".data") else None,
            "export_batch": batch, "export_seconds": round(time.time() - t0, 2)}
