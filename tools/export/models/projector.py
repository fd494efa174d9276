"""FreeBind projectors: upstream `Reaction_Head_mini` checkpoints → one ONNX file each.

Layout (FreeBind `models/projector.py`, `Reaction_Head_mini.Head2 = Proj_Head_mini`): a flat state
dict of 14 keys `Head2.mlps.{0,1,3,4}.*` — Linear(in→hidden), BatchNorm1d(hidden), [ReLU],
Linear(hidden→out), BatchNorm1d(out) — and the forward normalises the result (F.normalize, last
axis, eps 1e-12). `Reaction_Head_mini` itself has no forward (its `proj_*` methods call `Head2`),
which is why docs/export.md's original recipe failed; the export here is of `Head2`.

The fine-tuned audio file carries 7 more under `ib_head.projectors.{i}.Head2.*`, in upstream's
data-mode order (mix, A, T, V, AT, AV, TV); `finetuned_head_exports` reads those.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

import checkpoints as C
from contract import PROJECTOR_INPUT, PROJECTOR_OUTPUT, Export, FLOAT32, Input, unit_rows

DATA_MODES = ("mix", "A", "T", "V", "AT", "AV", "TV")


class Projector(nn.Module):
    """Linear → BatchNorm1d → ReLU → Linear → BatchNorm1d → n(·), keys `Head2.mlps.{0,1,3,4}.*`."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, device=None):
        super().__init__()
        kw = {"device": device}
        self.Head2 = nn.Module()
        self.Head2.mlps = nn.Sequential(
            nn.Linear(in_dim, hidden, **kw), nn.BatchNorm1d(hidden, **kw), nn.ReLU(),
            nn.Linear(hidden, out_dim, **kw), nn.BatchNorm1d(out_dim, **kw))
        self.in_dim, self.out_dim = in_dim, out_dim
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.Head2.mlps(x), p=2.0, dim=-1, eps=1e-12)


def load(state: C.StateDict, what: str) -> Projector:
    """A Projector sized from the keys and loaded by exact keys (state holds `Head2.*`)."""
    first = C.require(state, "Head2.mlps.0.weight", "a FreeBind projector checkpoint (Head2.mlps.*)")
    second = C.require(state, "Head2.mlps.3.weight", "a FreeBind projector checkpoint (Head2.mlps.*)")
    module = Projector(first.shape[1], first.shape[0], second.shape[0], device=state.device)
    C.load_exact(module, state, what=what)
    return module


def _export(module: Projector, file: str, source: str) -> Export:
    return Export(
        file=file, module=module, width=module.out_dim,
        inputs=(Input(PROJECTOR_INPUT, FLOAT32, (module.in_dim,)),), output=PROJECTOR_OUTPUT,
        random_inputs=lambda rng, rows, d=module.in_dim: [unit_rows(rng, rows, d)],
        upstream=_upstream(source, module), facts={"source": source})


def _upstream(source: str, module: Projector):
    def build():
        # FreeBind's projector.py needs only torch; it is not a package, so load it by path.
        code = os.environ.get("FREEBIND_UPSTREAM_CODE")
        if not code:
            raise ImportError("set FREEBIND_UPSTREAM_CODE to a clone of zehanwang01/FreeBind to verify projectors")
        import importlib.util
        spec = importlib.util.spec_from_file_location("freebind_upstream_projector",
                                                      os.path.join(code, "models", "projector.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        head = mod.Reaction_Head_mini(in_dim=module.in_dim, out_dim=module.out_dim)
        head.load_state_dict(module.state_dict())
        head.eval()
        return head.proj_audio
    return build


def exports(folder: str, files: Sequence[str]) -> Iterator[Export]:
    """One Export per manifest file `SET/MODE/best.onnx`, read from `folder/SET/MODE/best.pt`."""
    for file in files:
        source = os.path.join(folder, os.path.splitext(file)[0] + ".pt")
        state = C.open_state(source)
        yield _export(load(state, f"a FreeBind projector ({file})"), file, source)


def finetuned_head_exports(state: C.StateDict, files: Sequence[str]) -> Iterator[Export]:
    """The 7-projector head of the fine-tuned audio file (state holds `ib_head.projectors.*`)."""
    count = C.count_indexed(state, "ib_head.projectors.")
    by_mode = {f.split("/")[-2]: f for f in files}
    if count != len(DATA_MODES) or set(by_mode) != set(DATA_MODES):
        raise C.CheckpointError(f"'{state.source}' has {count} head projectors (ib_head.projectors.*); "
                                f"the manifests expect {len(by_mode)} named {sorted(by_mode)}, upstream has 7")
    for i, mode in enumerate(DATA_MODES):
        sub = state.under(f"ib_head.projectors.{i}.")
        yield _export(load(sub, f"projector {i} ({mode}) of the fine-tuned audio head"), by_mode[mode],
                      f"{state.source}#ib_head.projectors.{i}")
