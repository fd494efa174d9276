"""The upstream-parity cases: which seeded reduced checkpoint, which encoder, which inputs.

Shared by the generator (make_upstream_fixtures.py, which runs upstream's own code on them and
writes fixtures/upstream/) and the suite (test_upstream_parity.py, which runs our modules and the
exported ONNX on the same checkpoints and inputs and compares with the fixtures). Nothing here
imports upstream code.

A checkpoint is rebuilt in memory from its writer and seed (the same writers as the rest of the
suite: tests/random_upstream.py, models/random_checkpoints.py) and identified by a digest of its
tensors, so a change to a writer shows as "regenerate the fixtures", not as a numeric mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from tests import support
from tests import random_upstream as RU

import checkpoints as C  # noqa: E402
from models import clap, imagebind, internvl, projector, random_checkpoints as RC  # noqa: E402

FOLDER = os.path.join(support.FIXTURES, "upstream")
INDEX = os.path.join(FOLDER, "upstream.json")
RANDOM_ROWS = 4
CAPTIONS = ["an audio of barbeque", "a train passes a level crossing at night",
            "A long caption keeps going well past the context of every text encoder, so that truncation, the end "
            "token and padding are all exercised: " + "birds sing near a busy road, " * 12]
LONG_CLIP = "long-30s.wav"  # BBQ, toilet and train one after another: over 10 s, CLAP-General's fusion path


@dataclass(frozen=True)
class Real:
    """Real inputs: the product's preprocessing (`freebind preprocess --profile`) of media or captions."""

    profile: str
    items: tuple[str, ...]  # file names in the shared samples (or LONG_CLIP), or captions for text profiles


@dataclass(frozen=True)
class Case:
    name: str
    checkpoint: str  # a key of CHECKPOINTS
    file: str  # the Export (ONNX file) of our module this case checks
    seed: int  # random inputs: exp.random_inputs(default_rng(seed), RANDOM_ROWS)
    real: Real | None = None


CASES = [
    Case("imagebind-vision", "imagebind", "encoders/imagebind/vision.onnx", 11, Real("imagebind-vision", ("BBQ.jpeg",))),
    Case("imagebind-audio", "imagebind", "encoders/imagebind/audio.onnx", 12, Real("imagebind-audio", ("toilet.wav",))),
    Case("imagebind-text", "imagebind", "encoders/imagebind/text.onnx", 13, Real("imagebind-text", tuple(CAPTIONS))),
    Case("imagebind-audio-ft", "imagebind-ft", "encoders/imagebind-audio-ft/audio.onnx", 14,
         Real("imagebind-audio", ("toilet.wav",))),
    Case("imagebind-audio-ft-head-mix", "imagebind-ft", "InternVL_IB_FT_Audio_Head/mix/best.onnx", 15),
    Case("clap-general-audio", "clap-general", "encoders/clap-general/audio.onnx", 21, Real("clap-fusion", (LONG_CLIP,))),
    Case("clap-general-text", "clap-general", "encoders/clap-general/text.onnx", 22, Real("clap-text", tuple(CAPTIONS))),
    Case("clap-music-audio", "clap-music", "encoders/clap-music/audio.onnx", 23),
    Case("clap-music-text", "clap-music", "encoders/clap-music/text.onnx", 24, Real("clap-text", tuple(CAPTIONS))),
    Case("internvl-c-vision", "internvl", "encoders/internvl-c/vision.onnx", 31, Real("internvl-vision", ("BBQ.jpeg",))),
    Case("internvl-c-text", "internvl", "encoders/internvl-c/text.onnx", 32, Real("internvl-text", tuple(CAPTIONS))),
]

# Reduced sizes (the suite's): ImageBind as tests/upstream_tree.py's REDUCED; CLAP and InternVL as
# models/random_checkpoints.py's REDUCED_* (4 HTSAT stages, 2-layer RoBERTa; 2-block InternViT/QLLaMA).
IB_DIMS = support.IB_DIMS
SEEDS = {"imagebind": 1001, "imagebind-ft": 1002, "clap-general": 1003, "clap-music": 1004, "internvl": 1005}
CLAP_PREFIX = "state_dict.module."  # laion_clap's training run saves the weights under it


def _internvl_state() -> dict[str, torch.Tensor]:
    # as published: bfloat16 weights (our module widens them to float32; upstream gets the same values)
    state = RC.internvl_state_dict(RC.internvl_config(), np.random.default_rng(SEEDS["internvl"]))
    return {k: v.to(torch.bfloat16) if v.is_floating_point() and k != "logit_scale" else v for k, v in state.items()}


CHECKPOINTS = {
    "imagebind": lambda: RU.random_state(np.random.default_rng(SEEDS["imagebind"]), **IB_DIMS),
    "imagebind-ft": lambda: RU.random_finetuned_state(np.random.default_rng(SEEDS["imagebind-ft"]), audio=IB_DIMS["audio"]),
    "clap-general": lambda: {CLAP_PREFIX + k: v for k, v in RC.clap_state_dict(
        "general", np.random.default_rng(SEEDS["clap-general"]), reduced=True).items()},
    "clap-music": lambda: {CLAP_PREFIX + k: v for k, v in RC.clap_state_dict(
        "music", np.random.default_rng(SEEDS["clap-music"]), reduced=True).items()},
    "internvl": _internvl_state,
}


def digest(tensors) -> str:
    """SHA-256 over the keys, dtypes, shapes and bytes of a state dict or a list of arrays."""
    h = hashlib.sha256()
    items = sorted(tensors.items()) if isinstance(tensors, dict) else enumerate(tensors)
    for k, t in items:
        t = t.detach().contiguous() if isinstance(t, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(t))
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        h.update(f"{k}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(raw)
    return h.hexdigest()


def our_exports(checkpoint: str, state: dict):
    """Our Exports for a checkpoint (a fresh copy of the dict: the modules forget what they exported)."""
    view = C.StateDict(dict(state), f"<{checkpoint} seed {SEEDS[checkpoint]}>")
    if checkpoint == "imagebind":
        return imagebind.exports(view)
    if checkpoint == "imagebind-ft":
        return imagebind.finetuned_audio_exports(
            view, [f"InternVL_IB_FT_Audio_Head/{m}/best.onnx" for m in projector.DATA_MODES])
    if checkpoint in ("clap-general", "clap-music"):
        return clap.exports(view, checkpoint.split("-")[1])
    if checkpoint == "internvl":
        return internvl.exports(view, config=RC.internvl_config())
    raise KeyError(checkpoint)


def our_export(case: Case, state: dict):
    for exp in our_exports(case.checkpoint, state):
        if exp.file == case.file:
            return exp
    raise KeyError(f"{case.checkpoint} yields no {case.file}")


def random_inputs(case: Case, exp) -> list[np.ndarray]:
    return [np.ascontiguousarray(a) for a in exp.random_inputs(np.random.default_rng(case.seed), RANDOM_ROWS)]


def fixture_path(case: Case) -> str:
    return os.path.join(FOLDER, case.name + ".npz")


def read_index() -> dict:
    with open(INDEX, encoding="utf-8") as f:
        return json.load(f)
