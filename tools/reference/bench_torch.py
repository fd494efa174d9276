"""PyTorch baseline for the fusion benchmark (bench/FreeBind.Benchmarks, `fusion`).

Runs the ImageBind++ audio mixture the way upstream does: 14 torch projector modules in eval mode
(CLAP-G's 7 fed one atom, CLAP-M's 7 the other), each Linear → BatchNorm1d → ReLU → Linear →
BatchNorm1d → n(·) unfolded, then n(mean of the 14 outputs), under torch.no_grad. Weights are read
from the same .onnx files the C# benchmark loads, so all three paths compute the same function.

Launched by the C# benchmark as a subprocess; prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import freebind_reference as R  # noqa: E402

MODES = R.MODES
SETS = ("IB_PP_G_Proj", "IB_PP_M_Proj")  # CLAP-General and CLAP-Music → ImageBind (512 → 1024)


def openblas_info() -> dict:
    """Which OpenBLAS torch's BLAS calls land in, and the kernel it picked for this CPU."""
    info: dict = {}
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        info["core"] = lib.openblas_get_corename().decode()
        info["config"] = lib.openblas_get_config().decode()
        info["threads"] = int(lib.openblas_get_num_threads())
    except OSError as e:
        info["error"] = str(e)
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return info


def load_projector(path: str) -> R.Projector:
    tensors = R.onnx_tensors(onnx.load(path))
    p = R.Projector(512, 1024)
    state = p.state_dict()
    for name in state:
        if name.endswith("num_batches_tracked"):
            continue
        state[name] = torch.from_numpy(np.ascontiguousarray(tensors[name]))
    p.load_state_dict(state)
    return p.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="folder holding IB_PP_G_Proj/ and IB_PP_M_Proj/")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (OpenBLAS has its own pool)")
    ap.add_argument("--inputs", help="raw float32 [2, max batch, 512]: the two (normalised) atoms")
    ap.add_argument("--outputs", help="write the largest batch's mixture here, raw float32 [batch, 1024]")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    groups = [[load_projector(os.path.join(args.models, s, m, "best.onnx")) for m in MODES] for s in SETS]
    batches = [int(b) for b in args.batches.split(",")]
    top = max(batches)
    if args.inputs:
        atoms = torch.from_numpy(np.fromfile(args.inputs, dtype=np.float32).reshape(2, top, 512))
    else:
        atoms = R.n(torch.randn(2, top, 512, generator=torch.Generator().manual_seed(1)))

    def mixture(xg: torch.Tensor, xm: torch.Tensor) -> torch.Tensor:
        outs = [p(xg) for p in groups[0]] + [p(xm) for p in groups[1]]
        return R.n(torch.stack(outs).mean(0))

    results = []
    with torch.no_grad():
        for b in batches:
            xg, xm = atoms[0, :b].contiguous(), atoms[1, :b].contiguous()
            warm_end = time.perf_counter() + min(0.5, args.seconds / 3)
            warm = 0
            while warm < 2 or time.perf_counter() < warm_end:
                mixture(xg, xm)
                warm += 1
            samples = []
            start = time.perf_counter()
            while len(samples) < 5 or time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                mixture(xg, xm)
                samples.append(time.perf_counter() - t0)
            med = statistics.median(samples)
            results.append({"batch": b, "median_s": med, "iterations": len(samples),
                            "items_per_s": b / med})
        if args.outputs:
            mixture(atoms[0].contiguous(), atoms[1].contiguous()).numpy().astype(np.float32).tofile(args.outputs)

    print(json.dumps({
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else None,
        "blas_info": next((ln.strip() for ln in torch.__config__.show().splitlines() if "BLAS_INFO" in ln), ""),
        "openblas": openblas_info(),
        "results": results,
    }))


if __name__ == "__main__":
    main()
