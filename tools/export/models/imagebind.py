"""ImageBind (huge) vision, text and audio encoders, and FreeBind's fine-tuned audio trunk.

Written from facebookresearch/ImageBind `imagebind/models/{imagebind_model,multimodal_preprocessors,
transformer,helpers}.py` (commit 53680b0) and FreeBind `models/{imagebind_audio,experts}.py`:

- Every trunk is a stack of pre-norm blocks `x + attn(norm_1(x))`, `x + mlp(norm_2(x))` (LayerNorm
  eps 1e-6, exact GELU, MLP ×4) around `nn.MultiheadAttention` (packed in-projection; the audio trunk
  has `add_bias_kv`: one learned key/value appended to every sequence).
- Vision: the image is repeated to a 2-frame clip (`PadIm2Video`), a Conv3d (2,14,14) without bias
  makes 16×16 patches, a CLS token is prepended, learned positions added, a LayerNorm runs before
  the trunk; the head is LayerNorm → CLS → Linear (no bias); the postprocessor normalises.
- Text: token + learned position embeddings, a causal mask (the checkpoint's own `mask` buffer),
  the feature at the EOT position (argmax of the ids), LayerNorm → Linear; the postprocessor
  normalises and multiplies by clip(exp(log_logit_scale), max=100) (learned).
- Audio: Conv2d 16×16 stride 10 without bias over the [1,128,204] fbank, LayerNorm (eps 1e-5),
  CLS, learned positions; head as vision; postprocessor normalise × clip(exp(log 20), 100) = 20.
  The worker averages the 3 clip rows of an item (docs/export.md), as upstream's forward does.

Head counts are not in the keys: they follow ImageBind-huge's head widths (vision 80, text and
audio 64), so a reduced-width checkpoint keeps the same head width.
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import checkpoints as C
from contract import FLOAT32, INT64, Export, Input, random_floats, token_ids
from models import projector

HEAD_WIDTH = {"vision": 80, "text": 64, "audio": 64}
MAX_LOGIT_SCALE = 100.0
MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")
CLIP_SOT, CLIP_EOT, CONTEXT = 49406, 49407, 77
IMAGE, PATCH = 224, 14


class Attention(nn.Module):
    """nn.MultiheadAttention's parameters and maths, batch-first, self-attention only."""

    def __init__(self, dim: int, heads: int, bias_kv: bool, device=None):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim, device=device))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim, device=device))
        if bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim, device=device))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim, device=device))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = nn.Linear(dim, dim, device=device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(x.shape[0], -1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(x.shape[0], -1, -1)], dim=1)
            if mask is not None:
                mask = F.pad(mask, (0, 1))
        h, d = self.heads, self.head_dim
        q = q.reshape(q.shape[0], q.shape[1], h, d).transpose(1, 2) / math.sqrt(d)  # torch scales q first
        k = k.reshape(k.shape[0], k.shape[1], h, d).transpose(1, 2)
        v = v.reshape(v.shape[0], v.shape[1], h, d).transpose(1, 2)
        scores = q @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], h * d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, device=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, device=device)
        self.fc2 = nn.Linear(hidden, dim, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, bias_kv: bool, device=None):
        super().__init__()
        self.attn = Attention(dim, heads, bias_kv, device)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6, device=device)
        self.mlp = Mlp(dim, hidden, device)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6, device=device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), mask)
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, blocks: int, bias_kv: bool, device=None):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, bias_kv, device) for _ in range(blocks))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x


def _logit_scale(log_scale: torch.Tensor) -> torch.Tensor:
    return torch.clip(log_scale.exp(), max=MAX_LOGIT_SCALE)


class Vision(nn.Module):
    def __init__(self, dim: int, out_dim: int, blocks: int, hidden: int, tokens: int, device=None):
        super().__init__()
        self.patch_embed = nn.Conv3d(3, dim, (2, PATCH, PATCH), stride=(2, PATCH, PATCH), bias=False, device=device)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim, device=device))
        self.pos_embed = nn.Parameter(torch.empty(1, tokens, dim, device=device))
        self.pre_norm = nn.LayerNorm(dim, eps=1e-6, device=device)
        self.trunk = Trunk(dim, dim // HEAD_WIDTH["vision"], hidden, blocks, False, device)
        self.head_norm = nn.LayerNorm(dim, eps=1e-6, device=device)
        self.head_proj = nn.Linear(dim, out_dim, bias=False, device=device)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        clip = pixel_values.unsqueeze(2).repeat(1, 1, 2, 1, 1)  # PadIm2Video(pad_type="repeat", ntimes=2)
        x = self.patch_embed(clip).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.trunk(self.pre_norm(x))
        return F.normalize(self.head_proj(self.head_norm(x)[:, 0]), dim=-1)


class Text(nn.Module):
    def __init__(self, dim: int, out_dim: int, blocks: int, hidden: int, vocab: int, context: int, device=None):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim, device=device)
        self.pos_embed = nn.Parameter(torch.empty(1, context, dim, device=device))
        self.register_buffer("mask", torch.empty(context, context, device=device))
        self.trunk = Trunk(dim, dim // HEAD_WIDTH["text"], hidden, blocks, False, device)
        self.head_norm = nn.LayerNorm(dim, eps=1e-6, device=device)
        self.head_proj = nn.Linear(dim, out_dim, bias=False, device=device)
        self.log_logit_scale = nn.Parameter(torch.empty((), device=device))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.trunk(self.token_embedding(input_ids) + self.pos_embed, self.mask)
        eot = input_ids.argmax(dim=-1)  # EOT 49407 is the largest id
        x = x.gather(1, eot[:, None, None].expand(-1, 1, x.shape[-1]))[:, 0]
        return F.normalize(self.head_proj(self.head_norm(x)), dim=-1) * _logit_scale(self.log_logit_scale)


class Audio(nn.Module):
    def __init__(self, dim: int, out_dim: int, blocks: int, hidden: int, tokens: int, kernel: int, device=None):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, kernel, stride=10, bias=False, device=device)
        self.patch_norm = nn.LayerNorm(dim, device=device)  # nn.LayerNorm's default eps (1e-5), as upstream
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim, device=device))
        self.pos_embed = nn.Parameter(torch.empty(1, tokens, dim, device=device))
        self.trunk = Trunk(dim, dim // HEAD_WIDTH["audio"], hidden, blocks, True, device)
        self.head_norm = nn.LayerNorm(dim, eps=1e-6, device=device)
        self.head_proj = nn.Linear(dim, out_dim, bias=False, device=device)
        self.register_buffer("log_logit_scale", torch.empty((), device=device))

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_embed(fbank).flatten(2).transpose(1, 2))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.trunk(x)
        return F.normalize(self.head_proj(self.head_norm(x)[:, 0]), dim=-1) * _logit_scale(self.log_logit_scale)


# ---------------------------------------------------------------------------------------------
# Checkpoint layout: upstream key prefix → our module's, per modality (first match wins; checkpoints.load_exact)

LAYOUT = {
    "vision": [("modality_preprocessors.vision.rgbt_stem.proj.1.", "patch_embed."),
               ("modality_preprocessors.vision.cls_token", "cls_token"),
               ("modality_preprocessors.vision.pos_embedding_helper.pos_embed", "pos_embed"),
               ("modality_trunks.vision.pre_transformer_layer.0.", "pre_norm."),
               ("modality_trunks.vision.blocks.", "trunk.blocks."),
               ("modality_heads.vision.0.", "head_norm."),
               ("modality_heads.vision.2.", "head_proj.")],
    "text": [("modality_preprocessors.text.token_embedding.", "token_embedding."),
             ("modality_preprocessors.text.pos_embed", "pos_embed"),
             ("modality_preprocessors.text.mask", "mask"),
             ("modality_trunks.text.blocks.", "trunk.blocks."),
             ("modality_heads.text.proj.0.", "head_norm."),
             ("modality_heads.text.proj.1.", "head_proj."),
             ("modality_postprocessors.text.1.log_logit_scale", "log_logit_scale")],
    "audio": [("modality_preprocessors.audio.rgbt_stem.proj.", "patch_embed."),
              ("modality_preprocessors.audio.rgbt_stem.norm_layer.", "patch_norm."),
              ("modality_preprocessors.audio.cls_token", "cls_token"),
              ("modality_preprocessors.audio.pos_embedding_helper.pos_embed", "pos_embed"),
              ("modality_trunks.audio.blocks.", "trunk.blocks."),
              ("modality_heads.audio.0.", "head_norm."),
              ("modality_heads.audio.2.", "head_proj."),
              ("modality_postprocessors.audio.1.log_logit_scale", "log_logit_scale")],
}


def _others(modality: str, extra: Sequence[str] = ()) -> list[str]:
    # The other modalities of imagebind_huge.pth (depth, thermal, IMU are not exported) are harmless.
    return [f"modality_*.{m}.*" for m in MODALITIES if m != modality] + list(extra)


def _trunk_dims(state: C.StateDict, modality: str, what: str) -> tuple[int, int, int]:
    prefix = f"modality_trunks.{modality}.blocks."
    blocks = C.count_indexed(state, prefix)
    if blocks == 0:
        C.require(state, prefix + "0.attn.in_proj_weight", what)
    dim = state[prefix + "0.attn.in_proj_weight"].shape[1]
    hidden = state[prefix + "0.mlp.fc1.weight"].shape[0]
    if dim % HEAD_WIDTH[modality]:
        raise C.CheckpointError(f"'{state.source}': the {modality} trunk is {dim} wide, not a multiple of "
                                f"ImageBind's {HEAD_WIDTH[modality]}-wide heads")
    return dim, hidden, blocks


def build(state: C.StateDict, modality: str, what: str, tolerate: Sequence[str] = ()) -> nn.Module:
    """Our encoder for one modality, sized from the keys and loaded by exact keys."""
    dim, hidden, blocks = _trunk_dims(state, modality, what)
    device = state.device
    if modality == "vision":
        out = C.require(state, "modality_heads.vision.2.weight", what).shape[0]
        tokens = C.require(state, "modality_preprocessors.vision.pos_embedding_helper.pos_embed", what).shape[1]
        if tokens != (IMAGE // PATCH) ** 2 + 1:
            raise C.CheckpointError(f"'{state.source}': {tokens} vision positions, expected {(IMAGE // PATCH) ** 2 + 1} "
                                    f"for 224×224 images in 14×14 patches")
        module = Vision(dim, out, blocks, hidden, tokens, device)
    elif modality == "text":
        out = C.require(state, "modality_heads.text.proj.1.weight", what).shape[0]
        vocab = C.require(state, "modality_preprocessors.text.token_embedding.weight", what).shape[0]
        context = state["modality_preprocessors.text.pos_embed"].shape[1] if "modality_preprocessors.text.pos_embed" in state else CONTEXT
        if vocab <= CLIP_EOT or context != CONTEXT:
            raise C.CheckpointError(f"'{state.source}': text vocabulary {vocab} and context {context}; the CLIP "
                                    f"tokenizer needs {CLIP_EOT + 1} and {CONTEXT}")
        module = Text(dim, out, blocks, hidden, vocab, context, device)
    else:
        out = C.require(state, "modality_heads.audio.2.weight", what).shape[0]
        kernel = C.require(state, "modality_preprocessors.audio.rgbt_stem.proj.weight", what).shape[-1]
        tokens = C.require(state, "modality_preprocessors.audio.pos_embedding_helper.pos_embed", what).shape[1]
        module = Audio(dim, out, blocks, hidden, tokens, kernel, device)
        grid = ((128 - kernel) // 10 + 1) * ((204 - kernel) // 10 + 1) + 1
        if tokens != grid:
            raise C.CheckpointError(f"'{state.source}': {tokens} audio positions, expected {grid} for a [1,128,204] fbank")
    C.load_exact(module, state, what=what, tolerate=_others(modality, tolerate), prefixes=LAYOUT[modality],
                 infinite_ok=["modality_preprocessors.text.mask"])  # the causal mask: -inf above the diagonal
    module.eval()
    return module


# ---------------------------------------------------------------------------------------------
# Exports


def _random_pixels(rng: np.random.Generator, rows: int):
    return [random_floats(rng, rows, (3, IMAGE, IMAGE))]


def _random_fbank(rng: np.random.Generator, rows: int):
    return [random_floats(rng, rows, (1, 128, 204), scale=0.5)]


def _random_clip_ids(rng: np.random.Generator, rows: int):
    ids, _ = token_ids(rng, rows, CONTEXT, low=1, high=CLIP_SOT, bos=CLIP_SOT, eos=CLIP_EOT, pad=0)
    return [ids]


FILES = {"vision": "encoders/imagebind/vision.onnx", "text": "encoders/imagebind/text.onnx",
         "audio": "encoders/imagebind/audio.onnx"}
FT_AUDIO = "encoders/imagebind-audio-ft/audio.onnx"


def _export(module: nn.Module, modality: str, file: str, upstream) -> Export:
    if modality == "vision":
        inputs, profile, rand = (Input("pixel_values", FLOAT32, (3, IMAGE, IMAGE)),), "imagebind-vision", _random_pixels
    elif modality == "text":
        inputs, profile, rand = (Input("input_ids", INT64, (CONTEXT,)),), "imagebind-text", _random_clip_ids
    else:
        inputs, profile, rand = (Input("fbank", FLOAT32, (1, 128, 204)),), "imagebind-audio", _random_fbank
    trunk = module.trunk
    facts = {"blocks": len(trunk.blocks), "width": trunk.blocks[0].attn.out_proj.in_features,
             "heads": trunk.blocks[0].attn.heads}
    if hasattr(module, "log_logit_scale") and not module.log_logit_scale.is_meta:
        facts["logit_scale"] = float(_logit_scale(module.log_logit_scale.detach()))
    return Export(file=file, module=module, inputs=inputs, width=module.head_proj.out_features, profile=profile,
                  random_inputs=rand, upstream=upstream, facts=facts)


WHAT = "ImageBind-huge (imagebind_huge.pth)"


def exports(source) -> Iterator[Export]:
    """imagebind_huge.pth → vision, audio, text (one module alive at a time)."""
    state = C.open_state(source)
    C.require(state, "modality_trunks.vision.blocks.0.attn.in_proj_weight", WHAT)
    shared = _UpstreamCache(state)
    for modality in ("vision", "audio", "text"):
        module = build(state, modality, WHAT)
        yield _export(module, modality, FILES[modality], shared.encoder(modality))
        del module
        for kind in ("preprocessors", "trunks", "heads", "postprocessors"):
            state.forget(f"modality_{kind}.{modality}.")  # the module shares them; both go together


def finetuned_audio_exports(source, head_files: Sequence[str]) -> Iterator[Export]:
    """FreeBind's InternVL_IB_audio_with_head.pt: the audio trunk (`ib.*`, without the head) and its
    7-projector head (`ib_head.projectors.{0..6}`)."""
    state = C.open_state(source)
    what = "FreeBind's fine-tuned ImageBind audio (InternVL_IB_audio_with_head.pt)"
    C.require(state, "ib.modality_trunks.audio.blocks.0.attn.in_proj_weight", what)
    C.require(state, "ib_head.projectors.0.Head2.mlps.0.weight", what)
    trunk = state.under("ib.")
    module = build(trunk, "audio", what)
    # The file holds `ib.*` and `ib_head.*` only; check the remainder before exporting anything.
    stray = [k for k in state if not (k.startswith("ib.") or k.startswith("ib_head."))]
    if stray:
        raise C.CheckpointError(f"'{state.source}' does not fit {what}: unexpected {', '.join(stray[:6])}")
    yield _export(module, "audio", FT_AUDIO, _ft_upstream(state))
    del module
    yield from projector.finetuned_head_exports(state, head_files)


# ---------------------------------------------------------------------------------------------
# --verify-upstream: facebookresearch/ImageBind's own model on the same weights


def _upstream_kwargs(state: C.StateDict, modalities=("vision", "text", "audio")) -> dict:
    kw = {}
    for m in modalities:
        prefix = f"modality_trunks.{m}.blocks."
        dim = state[f"{prefix}0.attn.in_proj_weight"].shape[1]
        kw.update({f"{m}_embed_dim": dim, f"{m}_num_blocks": C.count_indexed(state, prefix),
                   f"{m}_num_heads": dim // HEAD_WIDTH[m]})
    kw["out_embed_dim"] = state[f"modality_heads.{modalities[-1]}.2.weight"].shape[0]
    return kw


def _used(state: C.StateDict, modalities) -> dict[str, torch.Tensor]:
    return {k: state[k] for k in state if k.split(".")[1] in modalities}


class _UpstreamCache:
    """Builds upstream's ImageBindModel once, on first use, for the three encoders."""

    def __init__(self, state: C.StateDict):
        self.state, self.model = state, None

    def encoder(self, modality: str):
        def build():
            if self.model is None:
                from imagebind.models import imagebind_model  # ImportError when ImageBind is not installed
                model = imagebind_model.ImageBindModel(**_upstream_kwargs(self.state))
                used = _used(self.state, ("vision", "text", "audio"))
                missing, unexpected = model.load_state_dict(used, strict=False)
                missing = [k for k in missing if k.split(".")[1] in ("vision", "text", "audio")]
                if missing or unexpected:
                    raise RuntimeError(f"upstream ImageBind refuses the checkpoint: missing {missing[:3]}, "
                                       f"unexpected {unexpected[:3]}")
                self.model = model.eval()
            return lambda x: self.model({modality: x})[modality]
        return build


def _ft_upstream(state: C.StateDict):
    def build():
        # FreeBind's own ImageBindModel_audio (models/imagebind_audio.py; not a package: loaded by path).
        code = os.environ.get("FREEBIND_UPSTREAM_CODE")
        if not code:
            raise ImportError("set FREEBIND_UPSTREAM_CODE to a clone of zehanwang01/FreeBind to verify the fine-tuned audio")
        import importlib.util
        spec = importlib.util.spec_from_file_location("freebind_upstream_imagebind_audio",
                                                      os.path.join(code, "models", "imagebind_audio.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sub = state.under("ib.")
        model = mod.ImageBindModel_audio(**_upstream_kwargs(sub, ("audio",))).eval()
        model.load_state_dict({k: sub[k] for k in sub}, strict=True)
        return lambda x: model({"audio": x})["audio"]
    return build
