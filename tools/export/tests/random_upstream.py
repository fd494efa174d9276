"""Random-weight checkpoints in the layouts of ImageBind-huge, FreeBind's fine-tuned audio file and
FreeBind's projectors (the tests and the measurements of docs/export.md use them).

Weights are random but shaped like trained ones (LayerNorm gains near 1, small biases, Linear
weights scaled by fan-in, BatchNorm statistics that are never the identity), so that a mistake
in an architecture shows in the outputs. The key names are upstream's: each module's state dict
renamed through its checkpoint layout (`imagebind.LAYOUT`, `projector.Projector`'s `Head2.mlps.*`),
and tests/test_layouts.py holds them to the layouts dumped from upstream's own classes.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn as nn

from models import projector
from models.imagebind import CLIP_EOT, CONTEXT, LAYOUT, Audio, Text, Vision
from models.projector import DATA_MODES, Projector


def random_projector(in_dim: int, out_dim: int, rng, hidden: int = 2048) -> Projector:
    """Random weights and BatchNorm statistics, so that a BatchNorm is never the identity."""
    m = Projector(in_dim, hidden, out_dim)
    with torch.no_grad():
        for lin in (m.Head2.mlps[0], m.Head2.mlps[3]):
            lin.weight.copy_(torch.from_numpy(rng.standard_normal(tuple(lin.weight.shape)).astype("float32"))
                             / lin.weight.shape[1] ** 0.5 * (lin.weight.shape[1] ** 0.5 if lin is m.Head2.mlps[0] else 1))
            lin.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, lin.bias.shape).astype("float32")))
        for bn in (m.Head2.mlps[1], m.Head2.mlps[4]):
            c = bn.num_features
            bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.3, c).astype("float32")))
            bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c).astype("float32")))
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype("float32")))
            bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, c).astype("float32")))
            bn.num_batches_tracked.fill_(int(rng.integers(1, 100000)))
    return m


def write_random_folder(folder: str, sets: dict[str, tuple[int, int]], rng) -> list[str]:
    """FreeBind's checkpoints/ layout: `SET/MODE/best.pt`, a flat `Head2.mlps.*` state dict each."""
    written = []
    for name, (in_dim, out_dim) in sets.items():
        for mode in DATA_MODES:
            path = os.path.join(folder, name, mode, "best.pt")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.save(random_projector(in_dim, out_dim, rng).state_dict(), path)
            written.append(path)
    return written


def _fill_random(module: nn.Module, rng: np.random.Generator) -> None:
    with torch.no_grad():
        for name, t in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if "norm" in name and leaf == "weight":
                v = rng.uniform(0.5, 1.5, t.shape)
            elif leaf in ("bias", "in_proj_bias", "bias_k", "bias_v"):
                v = rng.normal(0, 0.05, t.shape)
            elif leaf in ("cls_token", "pos_embed"):
                v = rng.normal(0, 0.2, t.shape)
            elif leaf == "log_logit_scale":
                v = np.log(rng.uniform(10, 100))
            elif t.dim() >= 2:
                fan_in = int(np.prod(t.shape[1:]))
                v = rng.standard_normal(t.shape, dtype=np.float32) / np.float32(math.sqrt(fan_in))
            else:
                v = rng.normal(0, 0.1, t.shape)
            t.copy_(torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(t.shape))


def _upstream_keys(module: nn.Module, modality: str) -> dict[str, torch.Tensor]:
    inverse = [(ours, theirs) for theirs, ours in LAYOUT[modality]]
    out = {}
    for key, t in module.state_dict().items():
        for ours, theirs in inverse:
            if key.startswith(ours):
                out[theirs + key[len(ours):]] = t.detach()
                break
        else:
            raise AssertionError(f"no upstream name for {key}")
    return out


def random_state(rng: np.random.Generator, *, vision=(160, 2), text=(128, 2), audio=(128, 2), out_dim=1024,
                 audio_only: bool = False, extras: dict | None = None) -> dict[str, torch.Tensor]:
    """An ImageBind state dict in upstream's key layout with (width, blocks) per trunk. The unused
    modalities (depth, thermal, IMU) come from `extras` (key → shape, e.g. the imagebind_huge fixture)
    or, by default, a few tiny tensors under their names."""
    state: dict[str, torch.Tensor] = {}
    builders = {"audio": lambda: Audio(audio[0], out_dim, audio[1], 4 * audio[0], 229, 16)}
    if not audio_only:
        builders["vision"] = lambda: Vision(vision[0], out_dim, vision[1], 4 * vision[0], 257)
        builders["text"] = lambda: Text(text[0], out_dim, text[1], 4 * text[0], CLIP_EOT + 1, CONTEXT)
    for modality in ("vision", "text", "audio"):
        if modality not in builders:
            continue
        module = builders[modality]()  # one at a time: a full-size vision trunk is 2.4 GB
        _fill_random(module, rng)
        if modality == "audio":
            module.log_logit_scale.fill_(math.log(20.0))
        if modality == "text":
            module.mask.copy_(torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1))
        state.update(_upstream_keys(module, modality))
        del module
    if audio_only:
        return state
    if extras is not None:
        for k, shape in extras.items():
            if k.split(".")[1] in ("depth", "thermal", "imu"):
                state[k] = torch.from_numpy(rng.normal(0, 0.02, shape).astype(np.float32)).reshape(shape)
    else:
        # The modalities the export leaves out, as imagebind_huge.pth carries them (tiny here).
        for m in ("depth", "thermal", "imu"):
            state[f"modality_preprocessors.{m}.cls_token"] = torch.zeros(1, 1, 32)
            state[f"modality_trunks.{m}.blocks.0.attn.in_proj_weight"] = torch.zeros(96, 32)
            state[f"modality_heads.{m}.0.weight"] = torch.ones(32)
            state[f"modality_postprocessors.{m}.1.log_logit_scale"] = torch.tensor(math.log(5.0))
    return state


def write_random_checkpoint(path: str, rng: np.random.Generator, **dims) -> None:
    """imagebind_huge.pth's layout (a plain state dict) with random weights and reduced sizes."""
    torch.save(random_state(rng, **dims), path)


def random_finetuned_state(rng: np.random.Generator, audio=(128, 2), out_dim=1024, head_out=768) -> dict[str, torch.Tensor]:
    """FreeBind's InternVL_IB_audio_with_head.pt layout: `ib.*` audio branch + `ib_head.projectors.{0..6}`."""
    state = {f"ib.{k}": v for k, v in random_state(rng, audio=audio, out_dim=out_dim, audio_only=True).items()}
    for i in range(len(projector.DATA_MODES)):
        for k, v in random_projector(out_dim, head_out, rng).state_dict().items():
            state[f"ib_head.projectors.{i}.{k}"] = v
    return state


def write_random_finetuned(path: str, rng: np.random.Generator, **dims) -> None:
    torch.save(random_finetuned_state(rng, **dims), path)
