"""Generates every file the space manifests name: projectors, stand-in encoders, tokenizers.

    generate_models.py --out DIR [--seed 7] [--spaces spaces/] [--force] [--no-verify]

Weights are a function of (seed, path) (see freebind_reference.py), so output is deterministic.
DIR/models.json records seed, generator version and each file's digest; a file whose record
matches is skipped, so re-runs in CI cost a few seconds.

Each new ONNX file is verified without onnxruntime: onnx.checker, its initializers equal the
torch weights bit for bit, and the graph evaluated by a small numpy interpreter (float64) agrees
with the torch module.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
import warnings

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import freebind_reference as R  # noqa: E402
import make_tokenizers  # noqa: E402

EXPORT_FORMAT = "opset17-1"  # bump when export settings change
OPSET = 17


def generator_version() -> str:
    # Weights and architecture live in these sources: any change regenerates everything.
    h = hashlib.sha256(EXPORT_FORMAT.encode())
    for name in ("freebind_reference.py", "make_tokenizers.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    return f"{EXPORT_FORMAT}+{h.hexdigest()[:16]}"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# What the manifests name


def plan_from_manifests(spaces_dir: str) -> dict[str, dict]:
    """relpath → job. Shapes come from the manifests; architectures from the reference."""
    jobs: dict[str, dict] = {}

    def add(rel: str, job: dict) -> None:
        if rel in jobs and jobs[rel] != job:
            raise ValueError(f"{rel} is declared twice with different shapes: {jobs[rel]} vs {job}")
        jobs[rel] = job

    files = sorted(glob.glob(os.path.join(spaces_dir, "*.json")))
    if not files:
        raise FileNotFoundError(f"no manifests in {spaces_dir}")
    for mf in files:
        with open(mf, encoding="utf-8") as f:
            m = json.load(f)
        for expert, e in m["experts"].items():
            for modality, mod in e["modalities"].items():
                spec = R.encoder_spec(expert, modality)
                if mod["model"] != spec["path"] or e["dimension"] != spec["dim"]:
                    raise ValueError(f"{mf}: {expert}/{modality} is {mod['model']} ({e['dimension']}-d), "
                                     f"the reference has {spec['path']} ({spec['dim']}-d)")
                if int(mod.get("clips", 1)) != spec["clips"]:
                    raise ValueError(f"{mf}: {expert}/{modality} clips {mod.get('clips', 1)} != {spec['clips']}")
                add(mod["model"], {"kind": "encoder", "expert": expert, "modality": modality})
                for tok in mod.get("tokenizer", []):
                    add(tok, {"kind": "tokenizer"})
        for set_name, ps in m["projectorSets"].items():
            for rel in ps["files"]:
                add(rel, {"kind": "projector", "in": ps["inputDimension"], "out": ps["outputDimension"]})
    for rel in R.BROKEN:
        add(rel, {"kind": "broken"})
    return jobs


# ---------------------------------------------------------------------------------------------
# Export


def _example(inputs, batch: int) -> tuple[torch.Tensor, ...]:
    out = []
    for _, (dtype, shape) in inputs:
        shp = [batch] + list(shape[1:])
        out.append(torch.ones(shp, dtype=torch.int64) if dtype == "int64" else torch.randn(shp))
    return tuple(out)


def _fix_output_shape(model: onnx.ModelProto, dim: int) -> None:
    # torch leaves the feature axis symbolic after the normalise; validators need it concrete.
    out = model.graph.output[0].type.tensor_type.shape
    out.dim[0].ClearField("dim_value")
    out.dim[0].dim_param = "batch"
    out.dim[1].ClearField("dim_param")
    out.dim[1].dim_value = dim


def export(module: torch.nn.Module, inputs, output: str, dim: int, path: str, batch: int = 2) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    names = [name for name, _ in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, _example(inputs, batch), tmp, opset_version=OPSET,
                          input_names=names, output_names=[output], do_constant_folding=True,
                          dynamic_axes={**{n: {0: "batch"} for n in names}, output: {0: "batch"}})
    model = onnx.load(tmp)
    _fix_output_shape(model, dim)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp)
    os.replace(tmp, path)  # never leave a half-written model under the final name


def projector_inputs(in_dim: int):
    return [("input", ("float32", [None, in_dim]))]


def build(rel: str, job: dict, seed: int):
    """(module, inputs, output name, output dim, clips) for one file."""
    if job["kind"] == "projector":
        return (R.Projector.seeded(job["in"], job["out"], seed, rel), projector_inputs(job["in"]),
                "output", job["out"], 1)
    if job["kind"] == "encoder":
        spec = R.encoder_spec(job["expert"], job["modality"])
    else:
        spec = R.BROKEN[rel]
    return R.seeded_encoder(rel, spec, seed), spec["inputs"], R.ENCODER_OUTPUT, spec["dim"], spec["clips"]


# ---------------------------------------------------------------------------------------------
# onnxruntime-free verification: a tiny numpy interpreter for the ops these graphs use


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b, strides, pads):
    nd = w.ndim - 2
    if any(pads):
        x = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    # win: [B, C, *out, *k] → contract C and k with w [O, C, *k]
    k_axes = tuple(range(2 + nd, 2 + 2 * nd))
    y = np.tensordot(win, w, axes=((1,) + k_axes, (1,) + tuple(range(2, 2 + nd))))  # [B, *out, O]
    y = np.moveaxis(y, -1, 1)
    return y + b.reshape((1, -1) + (1,) * nd)


def run_numpy(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluates the graph in float64; raises on an op it does not know."""
    env = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in feeds.items()}
    for t in model.graph.initializer:
        a = onnx.numpy_helper.to_array(t)
        env[t.name] = a.astype(np.float64) if a.dtype == np.float32 else a
    for node in model.graph.node:
        a = _attrs(node)
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            v = onnx.numpy_helper.to_array(a["value"])
            y = v.astype(np.float64) if v.dtype == np.float32 else v
        elif op == "Identity":
            y = x[0]
        elif op == "Gemm":
            A = x[0].T if a.get("transA") else x[0]
            B = x[1].T if a.get("transB") else x[1]
            y = a.get("alpha", 1.0) * (A @ B) + (a.get("beta", 1.0) * x[2] if len(x) > 2 else 0.0)
        elif op == "MatMul":
            y = x[0] @ x[1]
        elif op == "BatchNormalization":
            shp = (1, -1) + (1,) * (x[0].ndim - 2)
            s, bias, mean, var = (v.reshape(shp) for v in x[1:5])
            y = (x[0] - mean) / np.sqrt(var + a.get("epsilon", 1e-5)) * s + bias
        elif op == "Relu":
            y = np.maximum(x[0], 0.0)
        elif op == "Conv":
            nd = x[1].ndim - 2
            if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1] * nd)):
                raise NotImplementedError("Conv with groups/dilations")
            y = _conv(x[0], x[1], x[2] if len(x) > 2 else np.zeros(x[1].shape[0]),
                      a.get("strides", [1] * nd), a.get("pads", [0] * 2 * nd))
        elif op in ("ReduceMean", "ReduceL2", "ReduceSum"):
            axes = a.get("axes") if op != "ReduceSum" else (tuple(x[1].tolist()) if len(x) > 1 and x[1] is not None else None)
            axes = tuple(axes) if axes is not None else None
            keep = bool(a.get("keepdims", 1))
            fn = {"ReduceMean": lambda v: v.mean(axis=axes, keepdims=keep),
                  "ReduceSum": lambda v: v.sum(axis=axes, keepdims=keep),
                  "ReduceL2": lambda v: np.sqrt((v * v).sum(axis=axes, keepdims=keep))}[op]
            y = fn(x[0])
        elif op == "Clip":
            y = x[0]
            if len(x) > 1 and x[1] is not None:
                y = np.maximum(y, x[1])
            if len(x) > 2 and x[2] is not None:
                y = np.minimum(y, x[2])
        elif op == "Shape":
            y = np.array(x[0].shape, dtype=np.int64)
        elif op == "Expand":
            y = x[0] * np.ones(tuple(x[1].tolist()), dtype=x[0].dtype)
        elif op in ("Add", "Sub", "Mul", "Div", "Equal", "Greater"):
            y = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                 "Equal": np.equal, "Greater": np.greater}[op](x[0], x[1])
        elif op == "Neg":
            y = -x[0]
        elif op == "Log":
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.log(x[0])
        elif op == "Gather":
            y = np.take(x[0], x[1], axis=a.get("axis", 0))
        elif op == "Transpose":
            y = np.transpose(x[0], a.get("perm"))
        elif op == "Unsqueeze":
            y = x[0]
            for ax in sorted(int(v) % (x[0].ndim + len(x[1])) for v in x[1]):
                y = np.expand_dims(y, ax)
        elif op == "ArgMax":
            if a.get("select_last_index", 0):
                raise NotImplementedError("ArgMax select_last_index")
            y = np.argmax(x[0], axis=a.get("axis", 0))
            if a.get("keepdims", 1):
                y = np.expand_dims(y, a.get("axis", 0))
            y = y.astype(np.int64)
        elif op == "Cast":
            to = a["to"]
            y = x[0].astype(np.float64 if to == onnx.TensorProto.FLOAT else
                            onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[to])
        else:
            raise NotImplementedError(f"numpy check: op {op} not supported")
        env[node.output[0]] = y
    return [env[o.name] for o in model.graph.output]


def _verify_inputs(inputs, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    arrs = []
    for name, (dtype, shape) in inputs:
        shp = [batch] + list(shape[1:])
        if dtype == "int64":
            ids = rng.integers(3, 400, size=shp).astype(np.int64)
            ids[:, -3:] = 0
            if name == "attention_mask":
                ids = (rng.random(shp) < 0.8).astype(np.int64)
                ids[:, 0] = 1
            arrs.append(ids)
        else:
            arrs.append(rng.normal(0.0, 1.0, shp).astype(np.float32))
    return arrs


def verify(path: str, module: torch.nn.Module, inputs, output: str, dim: int, clips: int) -> float:
    """Returns max |numpy(graph) − torch| on a small batch; raises on any contract breach."""
    model = onnx.load(path)
    onnx.checker.check_model(model)
    if [i.name for i in model.graph.input] != [n for n, _ in inputs] or model.graph.output[0].name != output:
        raise ValueError(f"{path}: wrong input/output names")
    if model.opset_import[0].version != OPSET:
        raise ValueError(f"{path}: opset {model.opset_import[0].version}")
    R.check_onnx_weights(module, path)
    feeds = _verify_inputs(inputs, 2 * clips, np.random.default_rng(0))
    with torch.no_grad():
        want = module(*[torch.from_numpy(a) for a in feeds]).numpy()
    (got,) = run_numpy(model, {n: a for (n, _), a in zip(inputs, feeds)})
    if got.shape != (2 * clips, dim):
        raise ValueError(f"{path}: output shape {got.shape}, expected {(2 * clips, dim)}")
    if np.isnan(want).all() and np.isnan(got).all():
        return 0.0
    diff = float(np.max(np.abs(got - want)))
    if not diff <= 1e-5 * max(1.0, float(np.max(np.abs(want)))):
        raise ValueError(f"{path}: numpy evaluation of the graph differs from torch by {diff}")
    return diff


# ---------------------------------------------------------------------------------------------


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main() -> None:
    ap = argparse.ArgumentParser(description="Generate the stand-in models the space manifests name.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=R.DEFAULT_SEED)
    ap.add_argument("--spaces", default=os.path.normpath(os.path.join(HERE, "..", "..", "spaces")))
    ap.add_argument("--force", action="store_true", help="regenerate even files with a matching stamp")
    ap.add_argument("--no-verify", action="store_true", help="skip the numpy evaluation of new graphs")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    version = generator_version()
    jobs = plan_from_manifests(args.spaces)
    stamp_path = os.path.join(out, "models.json")
    old = {}
    if os.path.isfile(stamp_path) and not args.force:
        with open(stamp_path, encoding="utf-8") as f:
            s = json.load(f)
        if s.get("seed") == args.seed and s.get("version") == version:
            old = {e["path"]: e for e in s["files"]}

    def fresh(rel: str) -> bool:
        e, p = old.get(rel), os.path.join(out, rel)
        return bool(e) and os.path.isfile(p) and os.path.getsize(p) == e["bytes"] and sha256_file(p) == e["sha256"]

    made = skipped = 0
    worst = 0.0
    tok_rels = sorted(r for r, j in jobs.items() if j["kind"] == "tokenizer")
    if not all(fresh(r) for r in tok_rels):
        written = {os.path.relpath(p, out) for p in make_tokenizers.make_all(out)}
        missing = set(tok_rels) - written
        if missing:
            raise ValueError(f"manifests name tokenizer files make_tokenizers.py does not make: {sorted(missing)}")
        made += len(tok_rels)
    else:
        skipped += len(tok_rels)

    for rel in sorted(r for r, j in jobs.items() if j["kind"] != "tokenizer"):
        if fresh(rel):
            skipped += 1
            continue
        module, inputs, output, dim, clips = build(rel, jobs[rel], args.seed)
        path = os.path.join(out, rel)
        export(module, inputs, output, dim, path, batch=2 * clips)
        if not args.no_verify:
            worst = max(worst, verify(path, module, inputs, output, dim, clips))
        made += 1

    entries = []
    for rel in sorted(jobs):
        p = os.path.join(out, rel)
        e = {"path": rel, "kind": jobs[rel]["kind"], "bytes": os.path.getsize(p), "sha256": sha256_file(p)}
        if rel.endswith(".onnx"):
            m = onnx.load(p, load_external_data=False)
            e["inputs"] = {i.name: _dims(i) for i in m.graph.input}
            e["outputs"] = {o.name: _dims(o) for o in m.graph.output}
        entries.append(e)
    with open(stamp_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"seed": args.seed, "version": version, "opset": OPSET, "files": entries}, f, indent=1)
    os.replace(stamp_path + ".tmp", stamp_path)
    total = sum(e["bytes"] for e in entries)
    print(f"models: {made} written, {skipped} up to date, {len(entries)} files, {total / 2**20:.1f} MiB "
          f"in {out}; max |numpy graph - torch| {worst:.2e}; {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
