"""The checks every exported file passes, or the export fails.

1. Contract: the Export the module yields, and then the file written, have the input names, types
   and per-row shapes of the manifest's preprocessing profile (docs/preprocessing.md), one output
   `[batch, width]` with the expert's dimension (projectors: `input` → `output` with the set's
   dimensions), opset 17, a dynamic batch axis.
2. Numbers: the product's ONNX Runtime against the tool's PyTorch module, max abs ≤ TOLERANCE, on
   random inputs at a batch size other than the export's, and on real media through the product's
   preprocessing; each row of that batch run alone equals its row in the batch (a graph that baked
   the export batch in gives wrong rows without any error).
3. Optionally (--verify-upstream) the tool's module against upstream's own forward.
"""

from __future__ import annotations

import importlib
import os
from typing import Iterable

import numpy as np
import onnx
import torch

from contract import ENCODER_OUTPUT, FLOAT32, INT64, PROJECTOR_INPUT, PROJECTOR_OUTPUT, Export, Input
from parts import Expected

TOLERANCE = 1e-4
FP16_MIN_COSINE = 0.999  # float16 encoders against their float32 file, per row
CHECK_ROWS = 3  # random batch for the checks; the export uses 2, so a baked-in batch size shows

# Inputs of each preprocessing profile: docs/preprocessing.md's table, restated independently of
# the architecture modules (one row; the batch axis comes first).
PROFILE_INPUTS = {
    "imagebind-vision": (Input("pixel_values", FLOAT32, (3, 224, 224)),),
    "internvl-vision": (Input("pixel_values", FLOAT32, (3, 224, 224)),),
    "imagebind-audio": (Input("fbank", FLOAT32, (1, 128, 204)),),
    "clap-fusion": (Input("mel_fusion", FLOAT32, (4, 1001, 64)),),
    "clap": (Input("waveform", FLOAT32, (480000,)),),
    "imagebind-text": (Input("input_ids", INT64, (77,)),),
    "clap-text": (Input("input_ids", INT64, (77,)), Input("attention_mask", INT64, (77,))),
    "internvl-text": (Input("input_ids", INT64, (80,)),),
}

PROFILE_MODALITY = {"imagebind-vision": "image", "internvl-vision": "image", "imagebind-audio": "audio",
                    "clap-fusion": "audio", "clap": "audio", "imagebind-text": "text", "clap-text": "text",
                    "internvl-text": "text"}

_ONNX_TYPES = {FLOAT32: onnx.TensorProto.FLOAT, INT64: onnx.TensorProto.INT64}


class CheckFailed(Exception):
    """An exported file breaks its contract or disagrees with its PyTorch module."""


def expected_inputs(e: Expected) -> tuple[Input, ...]:
    if e.profile is None:
        return (Input(PROJECTOR_INPUT, FLOAT32, (e.input_width,)),)
    if e.profile not in PROFILE_INPUTS:
        raise CheckFailed(f"{e.file}: the manifests use profile '{e.profile}', which the exporter does not know")
    return PROFILE_INPUTS[e.profile]


def check_declaration(exp: Export, e: Expected) -> None:
    """The module's Export against the manifests' contract, before anything is exported."""
    problems = []
    want_inputs = expected_inputs(e)
    if tuple(exp.inputs) != want_inputs:
        problems.append(f"inputs {list(exp.inputs)}, the contract says {list(want_inputs)}")
    if exp.width != e.width:
        problems.append(f"width {exp.width}, the manifests say {e.width}")
    want_output = ENCODER_OUTPUT if e.profile else PROJECTOR_OUTPUT
    if exp.output != want_output:
        problems.append(f"output '{exp.output}', the contract says '{want_output}'")
    if (exp.profile or None) != (e.profile or None):
        problems.append(f"profile {exp.profile}, the manifests say {e.profile}")
    if problems:
        raise CheckFailed(f"{exp.file}: the architecture module declares " + "; ".join(problems))


def _dims(vi) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def check_file(path: str, exp: Export, e: Expected) -> dict:
    """Names, types, shapes and opset of the written file; returns them for export.json."""
    model = onnx.load(path, load_external_data=False)
    problems = []
    if not any(o.domain in ("", "ai.onnx") and o.version == 17 for o in model.opset_import):
        problems.append(f"opset {[(o.domain, o.version) for o in model.opset_import]}, expected 17")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    want = expected_inputs(e)
    if [i.name for i in inputs] != [w.name for w in want]:
        problems.append(f"inputs {[i.name for i in inputs]}, expected {[w.name for w in want]}")
    else:
        for i, w in zip(inputs, want):
            if i.type.tensor_type.elem_type != _ONNX_TYPES[w.dtype]:
                problems.append(f"input {i.name} has element type {i.type.tensor_type.elem_type}, expected {w.dtype}")
            dims = _dims(i)
            if len(dims) != 1 + len(w.shape) or not isinstance(dims[0], str) or tuple(dims[1:]) != w.shape:
                problems.append(f"input {i.name} is {dims}, expected [batch, {', '.join(map(str, w.shape))}]")
    outs = list(model.graph.output)
    want_out = ENCODER_OUTPUT if e.profile else PROJECTOR_OUTPUT
    if len(outs) != 1 or outs[0].name != want_out:
        problems.append(f"outputs {[o.name for o in outs]}, expected one named {want_out}")
    else:
        dims = _dims(outs[0])
        if outs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            problems.append("the output is not float32")
        if len(dims) != 2 or not isinstance(dims[0], str) or dims[1] != e.width:
            problems.append(f"output is {dims}, expected [batch, {e.width}]")
    if problems:
        raise CheckFailed(f"{path}: " + "; ".join(problems))
    return {"inputs": {i.name: _dims(i) for i in inputs}, "output": {outs[0].name: _dims(outs[0])}}


# ---------------------------------------------------------------------------------------------
# Numbers


def torch_forward(module: torch.nn.Module, arrays) -> np.ndarray:
    with torch.no_grad():
        return module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]).float().numpy()


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.min(np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)))


def max_abs(a: np.ndarray, b: np.ndarray, what: str) -> float:
    if a.shape != b.shape:
        raise CheckFailed(f"{what}: shapes {a.shape} and {b.shape} differ")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise CheckFailed(f"{what}: non-finite values")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _rows(arrays, i: int):
    return [a[i:i + 1] for a in arrays]


def compare(path: str, exp: Export, product, *, seed: int, real: list[np.ndarray] | None,
            tolerance: float = TOLERANCE) -> dict:
    """ONNX (the product's runtime) against PyTorch; returns the figures, raises over tolerance."""
    names = [i.name for i in exp.inputs]
    rng = np.random.default_rng(seed + 1)
    rand = [np.ascontiguousarray(a) for a in exp.random_inputs(rng, CHECK_ROWS)]
    batches = [list(zip(names, rand))] + [list(zip(names, _rows(rand, i))) for i in range(CHECK_ROWS)]
    if real is not None:
        batches.append(list(zip(names, real)))
    outputs, seconds = product.run_onnx(path, batches)
    width = exp.width
    for o, b in zip(outputs, batches):
        if o.shape != (b[0][1].shape[0], width):
            raise CheckFailed(f"{path}: ONNX Runtime returned {list(o.shape)} for {b[0][1].shape[0]} rows, "
                              f"expected [{b[0][1].shape[0]}, {width}]")
    want = torch_forward(exp.module, rand)
    figures = {"random_rows": CHECK_ROWS,
               "random_max_abs": max_abs(outputs[0], want, f"{path}: ONNX vs PyTorch (random inputs)"),
               "batch1_vs_batchN_max_abs": max(
                   max_abs(outputs[1 + i], outputs[0][i:i + 1], f"{path}: batch 1 vs batch {CHECK_ROWS}")
                   for i in range(CHECK_ROWS)),
               "output_scale": float(np.max(np.abs(want))),
               "onnx_seconds_batch": seconds[0]}
    if real is not None:
        want_real = torch_forward(exp.module, real)
        figures["real_rows"] = int(real[0].shape[0])
        figures["real_max_abs"] = max_abs(outputs[-1], want_real, f"{path}: ONNX vs PyTorch (real inputs)")
    failed = {k: v for k, v in figures.items() if k.endswith("_max_abs") and not v <= tolerance}
    if failed:
        raise CheckFailed(f"{path}: " + ", ".join(f"{k} {v:.3g}" for k, v in failed.items()) +
                          f" exceed {tolerance:g}" + (" (the graph depends on the export batch size)"
                                                      if "batch1_vs_batchN_max_abs" in failed else ""))
    return figures


class UpstreamUnavailable(CheckFailed):
    """--verify-upstream cannot run: upstream's code is not importable (stops the part)."""


# What --verify-upstream imports per part: (module to import, or FREEBIND_CODE + a file in it; what it is).
FREEBIND_CODE = "FREEBIND_UPSTREAM_CODE"
_IMAGEBIND = ("imagebind.models.imagebind_model", "ImageBind (facebookresearch/ImageBind, with its requirements)")
_LAION_CLAP = ("laion_clap", "laion_clap (LAION-AI/CLAP, with transformers <= 4.30.2)")
UPSTREAM_CODE = {
    "imagebind": [_IMAGEBIND],
    "imagebind-audio-ft": [_IMAGEBIND, (FREEBIND_CODE, "models/imagebind_audio.py"), (FREEBIND_CODE, "models/projector.py")],
    "projectors": [(FREEBIND_CODE, "models/projector.py")],
    "clap-general": [_LAION_CLAP],
    "clap-music": [_LAION_CLAP],
    "internvl-c": [("transformers", "transformers (InternVL's remote code runs through it)")],
}


def upstream_problem(parts: Iterable[str]) -> str | None:
    """Why --verify-upstream cannot run for these parts (one sentence), or None."""
    missing: dict[str, list[str]] = {}
    for part in parts:
        for module, what in UPSTREAM_CODE.get(part, []):
            if module == FREEBIND_CODE:
                folder = os.environ.get(FREEBIND_CODE)
                if not folder:
                    key = f"{FREEBIND_CODE} (set it to a clone of zehanwang01/FreeBind)"
                elif not os.path.isfile(os.path.join(folder, what)):
                    key = f"{FREEBIND_CODE}={folder} (it has no {what}: is it a clone of zehanwang01/FreeBind?)"
                else:
                    continue
            else:
                try:
                    importlib.import_module(module)
                    continue
                except ImportError as e:
                    name = getattr(e, "name", None) or str(e)
                    key = what if name and module.startswith(name.split(".")[0]) else f"{what}: it needs '{name}'"
            missing.setdefault(key, [])
            if part not in missing[key]:
                missing[key].append(part)
    if not missing:
        return None
    return ("--verify-upstream runs upstream's own code, which is not importable here: " +
            "; ".join(f"{k} for {', '.join(v)}" for k, v in missing.items()) +
            ". Install it, or export without --verify-upstream")


def compare_upstream(exp: Export, *, seed: int, real: list[np.ndarray] | None, tolerance: float = TOLERANCE) -> dict:
    """The tool's PyTorch module against upstream's own forward (--verify-upstream)."""
    if exp.upstream is None:
        raise CheckFailed(f"{exp.file}: no upstream comparison is defined for this file")
    try:
        upstream = exp.upstream()
    except ImportError as e:
        raise UpstreamUnavailable(f"--verify-upstream: upstream's code for {exp.file} cannot be imported ({e}); "
                                  f"install it, or export without --verify-upstream") from None
    rng = np.random.default_rng(seed + 2)
    figures = {}
    for label, arrays in (("random", exp.random_inputs(rng, CHECK_ROWS)), ("real", real)):
        if arrays is None:
            continue
        with torch.no_grad():
            theirs = upstream(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]).float().numpy()
        figures[f"upstream_{label}_max_abs"] = max_abs(torch_forward(exp.module, arrays), theirs,
                                                        f"{exp.file}: ours vs upstream ({label})")
    failed = {k: v for k, v in figures.items() if not v <= tolerance}
    if failed:
        raise CheckFailed(f"{exp.file}: differs from upstream: " + ", ".join(f"{k} {v:.3g}" for k, v in failed.items()))
    return figures
