"""The plug-in interface between the export framework and the architecture modules.

An architecture module (`models/<name>.py`) knows one upstream checkpoint layout and the PyTorch
definition of its encoders. It exposes one generator function that reads the checkpoint and yields
one `Export` per ONNX file; the framework (export.py) exports each, checks it and writes
export.json. The module never calls torch.onnx, never runs ONNX Runtime and never writes files.

    def exports(source, **options) -> Iterator[Export]

- `source` is whatever `checkpoints.open_state(source)` accepts: a checkpoint file, a Hugging Face
  folder, or a `StateDict` already open (the layout tests pass one whose tensors live on the `meta`
  device, built from a key → shape fixture). Read it with `checkpoints.open_state`, take your part
  with `StateDict.under(prefix)` and load it with `checkpoints.load_exact` (a missing, extra or
  mis-shaped key is an error naming it; tolerate only known harmless extras, by name).
- Build every parameter and buffer with `device=state.device`, so that a `meta` checkpoint builds
  a `meta` module: the full-size layout test then allocates nothing. Count blocks and read widths
  from the keys (`checkpoints.count_indexed`, tensor shapes), never from constants, so a reduced
  checkpoint in the same layout exports too.
- Yield one Export at a time and build its module only when you are about to yield it: the
  framework drops it before asking for the next, so only one encoder's weights are alive.
- `module.forward(*inputs)` takes exactly the ONNX inputs, in the order of `Export.inputs`, as
  torch tensors with a leading batch axis, and returns float32 [batch, width]. It must be
  traceable with every batch size right (no Python `int(...)` of a tensor size, no loops over the
  batch): the framework exports at one batch size and checks two others.
- Raise `checkpoints.CheckpointError` with one sentence a user can act on for anything wrong
  with the input.

The manifests (spaces/*.json) decide which files exist; docs/export.md is their contract. The
framework compares every Export against that contract (file name, input names/types/shapes from the
profile, output width from the expert's dimension) before exporting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

FLOAT32 = "float32"
INT64 = "int64"

ENCODER_OUTPUT = "embedding"
PROJECTOR_INPUT = "input"
PROJECTOR_OUTPUT = "output"


@dataclass(frozen=True)
class Input:
    """One ONNX input: its name, element type and the shape of one row (without the batch axis)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == FLOAT32 else torch.int64


RandomInputs = Callable[[np.random.Generator, int], Sequence[np.ndarray]]
"""(rng, rows) → one array per input, each [rows, *shape]: plausible values for the model (token
ids a tokenizer could emit, an EOT where the pooling reads it, masks matching the ids)."""

Upstream = Callable[[], Callable[..., torch.Tensor]]
"""Imports the upstream package (raise ImportError naming it when absent) and returns a function
that maps the same torch inputs as `Export.module` to upstream's own output, for --verify-upstream."""


@dataclass
class Export:
    """One ONNX file to write: where, what computes it, and how to check it."""

    file: str
    """Model-root-relative path exactly as the manifests name it, e.g. encoders/imagebind/vision.onnx."""

    module: torch.nn.Module
    """Eval mode, float32; forward(*inputs) → [batch, width]."""

    inputs: tuple[Input, ...]
    width: int
    random_inputs: RandomInputs

    profile: Optional[str] = None
    """The product's preprocessing profile for this encoder (real media is fed through it for the
    real-input check); None for projectors."""

    output: str = ENCODER_OUTPUT
    upstream: Optional[Upstream] = None
    facts: dict = field(default_factory=dict)
    """What export.json should record about this file (block counts, widths, choices made)."""

    float32_scopes: tuple[str, ...] = ()
    """Submodules (paths as in `module.named_modules()`) that `--fp16` keeps in float32, e.g. an STFT
    front end whose power overflows float16; see fp16.py for what is always kept."""

    @property
    def is_projector(self) -> bool:
        return self.profile is None


# ---------------------------------------------------------------------------------------------
# Helpers for RandomInputs


def random_floats(rng: np.random.Generator, rows: int, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal((rows, *shape)) * scale).astype(np.float32)


def unit_rows(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    """Unit-norm rows: what a projector reads (n(atom))."""
    x = rng.standard_normal((rows, width))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def token_ids(rng: np.random.Generator, rows: int, length: int, *, low: int, high: int, bos: int | None,
              eos: int | None, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention_mask) int64 [rows, length]: BOS, random content of random length, EOS,
    right padding; one row fills the whole context."""
    ids = np.full((rows, length), pad, dtype=np.int64)
    mask = np.zeros((rows, length), dtype=np.int64)
    specials = (bos is not None) + (eos is not None)
    for r in range(rows):
        n = length - specials if r == 0 else int(rng.integers(1, length - specials + 1))
        body = rng.integers(low, high, size=n)
        row = ([bos] if bos is not None else []) + body.tolist() + ([eos] if eos is not None else [])
        ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    return ids, mask
