"""Independent PyTorch reference for the FreeBind bond engine and the generated stand-in models.

Everything the C# engine is checked against is computed here, in float32, by torch modules:
the upstream-shaped projectors, the six FreeBind variants (written the way upstream's classes are,
not read from spaces/*.json) and tiny stand-in expert encoders with the upstream I/O contracts.
Weights are a pure function of (seed, file path), so the generator and the expected-output writer
rebuild identical modules without sharing state; `check_onnx_weights` proves a file on disk holds
exactly those weights.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import skip_init

MODES = ("mix", "A", "T", "V", "AT", "AV", "TV")  # upstream's 7 training data modes, one projector each
HIDDEN = 2048
DEFAULT_SEED = 7
MODALITIES = ("image", "audio", "text")

# Token layouts of the upstream tokenizers (ids the stand-in text encoders rely on).
CLIP_SOT, CLIP_EOT, CLIP_VOCAB, CLIP_LEN = 49406, 49407, 49408, 77
ROBERTA_BOS, ROBERTA_PAD, ROBERTA_EOS, ROBERTA_VOCAB, ROBERTA_LEN = 0, 1, 2, 50265, 77
LLAMA_PAD, LLAMA_BOS, LLAMA_EOS, INTERNVL_VOCAB, INTERNVL_LEN = 0, 1, 2, 49411, 80


def n(x: torch.Tensor) -> torch.Tensor:
    """n(x) = x / max(|x|2, 1e-12), over the last axis."""
    return F.normalize(x, p=2.0, dim=-1, eps=1e-12)


def file_rng(seed: int, relpath: str) -> np.random.Generator:
    # Per-file stream: any file can be rebuilt alone, in any order, on any machine.
    key = int.from_bytes(hashlib.sha256(relpath.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), key])


def _fill(t: torch.Tensor, values: np.ndarray) -> None:
    with torch.no_grad():
        t.copy_(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(t.shape))


def _random_bn(bn: nn.BatchNorm1d, rng: np.random.Generator) -> None:
    # Random statistics and affine, so BatchNorm is never the identity (a fold bug would show).
    c = bn.num_features
    _fill(bn.running_mean, rng.normal(0.0, 0.3, c))
    _fill(bn.running_var, rng.uniform(0.5, 2.0, c))
    _fill(bn.weight, rng.uniform(0.5, 1.5, c))
    _fill(bn.bias, rng.normal(0.0, 0.1, c))


# ---------------------------------------------------------------------------------------------
# Projectors and mixtures


class Projector(nn.Module):
    """Upstream projector: Linear → BN → ReLU → Linear → BN → n(·), eval mode.

    The Linear weights start uninitialised: build with `seeded` or load a state dict."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        # skip_init: torch's default init would be overwritten anyway (seeded) and costs seconds.
        self.net = nn.Sequential(
            skip_init(nn.Linear, in_dim, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
            skip_init(nn.Linear, HIDDEN, out_dim), nn.BatchNorm1d(out_dim))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return n(self.net(x))

    @classmethod
    def seeded(cls, in_dim: int, out_dim: int, seed: int, relpath: str) -> "Projector":
        p = cls(in_dim, out_dim)
        rng = file_rng(seed, relpath)
        l1, bn1, _, l2, bn2 = p.net
        # Inputs are unit vectors: std-1 rows keep the first layer's output O(1), i.e. input
        # dependent, instead of being swamped by the BN statistics.
        _fill(l1.weight, rng.normal(0.0, 1.0, (HIDDEN, in_dim)))
        _fill(l1.bias, rng.normal(0.0, 0.1, HIDDEN))
        _random_bn(bn1, rng)
        _fill(l2.weight, rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (out_dim, HIDDEN)))
        _fill(l2.bias, rng.normal(0.0, 0.1, out_dim))
        _random_bn(bn2, rng)
        return p


class Mixture(nn.Module):
    """M = n(mean_k P_k(n(atom_src(k)))); several (source, projectors) groups = a parallel bond.

    memo: optional dict shared between mixtures; a mixture output depends on projectors and
    inputs only, not on factors, so sweeping factor settings over the same atoms reuses it.
    """

    def __init__(self, groups: list[tuple[str, list[Projector]]], memo: dict | None = None):
        super().__init__()
        self.sources = [src for src, _ in groups]
        self.groups = nn.ModuleList(nn.ModuleList(ps) for _, ps in groups)
        if not all(len(ps) for ps in self.groups):
            raise ValueError("a mixture needs at least one projector per group")
        self.memo = memo

    def forward(self, atoms: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = tuple(atoms[src] for src in self.sources)
        key = tuple(id(p) for ps in self.groups for p in ps) + tuple(id(x) for x in inputs)
        if self.memo is not None and key in self.memo:
            return self.memo[key][1]
        outs = [p(n(x)) for x, ps in zip(inputs, self.groups) for p in ps]
        out = n(torch.stack(outs).mean(0))
        if self.memo is not None:
            self.memo[key] = (inputs, out)  # holding the inputs keeps their ids unique
        return out


# ---------------------------------------------------------------------------------------------
# Stand-in expert encoders (tiny, but conv/linear + nonlinearity + pooling + linear)


class ConvPoolEncoder(nn.Module):
    """Patchify conv → ReLU → global mean pool → Linear; optional n(·)·scale like the upstream heads."""

    def __init__(self, in_ch: int, kernel, stride, out_dim: int, width: int = 64,
                 conv1d: bool = False, flat_input: bool = False,
                 normalize: bool = False, scale: float = 1.0):
        super().__init__()
        conv = nn.Conv1d if conv1d else nn.Conv2d
        self.conv = conv(in_ch, width, kernel, stride)
        self.head = nn.Linear(width, out_dim)
        self.flat_input, self.normalize, self.scale = flat_input, normalize, float(scale)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flat_input:  # raw waveform [B, T] → [B, 1, T]
            x = x.unsqueeze(1)
        h = F.relu(self.conv(x))
        h = h.mean(dim=tuple(range(2, h.dim())))
        y = self.head(h)
        if self.normalize:
            y = n(y)
            if self.scale != 1.0:
                y = y * self.scale
        return y

    def reset_from(self, rng: np.random.Generator) -> None:
        fan_in = self.conv.weight[0].numel()
        _fill(self.conv.weight, rng.normal(0.0, np.sqrt(2.0 / fan_in), tuple(self.conv.weight.shape)))
        _fill(self.conv.bias, rng.normal(0.0, 0.1, self.conv.out_channels))
        width = self.head.in_features
        _fill(self.head.weight, rng.normal(0.0, 1.0 / np.sqrt(width), tuple(self.head.weight.shape)))
        _fill(self.head.bias, rng.normal(0.0, 0.1, self.head.out_features))


class TokenEncoder(nn.Module):
    """Token + position embedding → per-token mixing → ReLU → pooling → Linear.

    pooling: 'argmax' (CLIP/ImageBind: feature at the EOT = highest id), 'masked-mean' (mean over
    attention_mask), 'last' (InternVL-C: last token with id > 0).
    """

    def __init__(self, vocab: int, length: int, out_dim: int, pooling: str, width: int = 32,
                 hidden: int = 64, normalize: bool = False, scale: float = 1.0):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(length, width))
        # A kernel-3 conv mixes neighbours, so the pooled token depends on its context.
        self.mix = nn.Conv1d(width, hidden, 3, padding=1)
        self.head = nn.Linear(hidden, out_dim)
        self.pooling, self.normalize, self.scale = pooling, normalize, float(scale)
        self.register_buffer("positions", torch.arange(length), persistent=False)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.tok(input_ids) + self.pos
        h = F.relu(self.mix(x.transpose(1, 2))).transpose(1, 2)  # [B, L, hidden]
        if self.pooling == "masked-mean":
            m = attention_mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            if self.pooling == "argmax":
                idx = input_ids.argmax(dim=-1)
            else:
                idx = ((input_ids > 0).sum(dim=-1) - 1).clamp_min(0)
            # One-hot selection instead of fancy indexing: exports to plain ops and is exact.
            sel = (self.positions.unsqueeze(0) == idx.unsqueeze(1)).to(h.dtype)
            pooled = (h * sel.unsqueeze(-1)).sum(1)
        y = self.head(pooled)
        if self.normalize:
            y = n(y)
            if self.scale != 1.0:
                y = y * self.scale
        return y

    def reset_from(self, rng: np.random.Generator) -> None:
        _fill(self.tok.weight, rng.normal(0.0, 1.0, tuple(self.tok.weight.shape)))
        _fill(self.pos, rng.normal(0.0, 0.5, tuple(self.pos.shape)))
        fan_in = self.mix.weight[0].numel()
        _fill(self.mix.weight, rng.normal(0.0, np.sqrt(2.0 / fan_in), tuple(self.mix.weight.shape)))
        _fill(self.mix.bias, rng.normal(0.0, 0.1, self.mix.out_channels))
        hid = self.head.in_features
        _fill(self.head.weight, rng.normal(0.0, 1.0 / np.sqrt(hid), tuple(self.head.weight.shape)))
        _fill(self.head.bias, rng.normal(0.0, 0.1, self.head.out_features))


class NanVision(nn.Module):
    """ImageBind vision contract, but every output is NaN (log of a negative number)."""

    def __init__(self):
        super().__init__()
        self.inner = ConvPoolEncoder(3, 16, 16, 1024)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        y = self.inner(pixel_values)
        return y + torch.log(-(y * y) - 1.0)  # input dependent, so export cannot fold it away

    def reset_from(self, rng: np.random.Generator) -> None:
        self.inner.reset_from(rng)


# ImageBind's audio postprocessor scales by a fixed 20; its text one by a learned logit scale
# (initialised to 1/0.07): the stand-in uses that initial value.
IMAGEBIND_AUDIO_SCALE = 20.0
IMAGEBIND_TEXT_SCALE = 1.0 / 0.07


def _f32(shape):
    return ("float32", shape)


def _i64(shape):
    return ("int64", shape)


# (expert, modality) → file, builder, ONNX inputs (name, dtype, shape with None = batch), output dim,
# clips averaged per item after the model.
ENCODERS = {
    ("imagebind", "image"): dict(
        path="encoders/imagebind/vision.onnx", dim=1024, clips=1,
        inputs=[("pixel_values", _f32([None, 3, 224, 224]))],
        build=lambda: ConvPoolEncoder(3, 16, 16, 1024, normalize=True)),
    ("imagebind", "audio"): dict(
        path="encoders/imagebind/audio.onnx", dim=1024, clips=3,
        inputs=[("fbank", _f32([None, 1, 128, 204]))],
        build=lambda: ConvPoolEncoder(1, 16, 10, 1024, normalize=True, scale=IMAGEBIND_AUDIO_SCALE)),
    ("imagebind", "text"): dict(
        path="encoders/imagebind/text.onnx", dim=1024, clips=1,
        inputs=[("input_ids", _i64([None, CLIP_LEN]))],
        build=lambda: TokenEncoder(CLIP_VOCAB, CLIP_LEN, 1024, "argmax", normalize=True,
                                   scale=IMAGEBIND_TEXT_SCALE)),
    ("imagebind-audio-ft", "audio"): dict(
        path="encoders/imagebind-audio-ft/audio.onnx", dim=1024, clips=3,
        inputs=[("fbank", _f32([None, 1, 128, 204]))],
        build=lambda: ConvPoolEncoder(1, 16, 10, 1024, normalize=True, scale=IMAGEBIND_AUDIO_SCALE)),
    ("clap-general", "audio"): dict(
        path="encoders/clap-general/audio.onnx", dim=512, clips=1,
        inputs=[("mel_fusion", _f32([None, 4, 1001, 64]))],
        build=lambda: ConvPoolEncoder(4, 16, 16, 512, normalize=True)),
    ("clap-general", "text"): dict(
        path="encoders/clap-general/text.onnx", dim=512, clips=1,
        inputs=[("input_ids", _i64([None, ROBERTA_LEN])), ("attention_mask", _i64([None, ROBERTA_LEN]))],
        build=lambda: TokenEncoder(ROBERTA_VOCAB, ROBERTA_LEN, 512, "masked-mean", normalize=True)),
    ("clap-music", "audio"): dict(
        path="encoders/clap-music/audio.onnx", dim=512, clips=1,
        inputs=[("waveform", _f32([None, 480000]))],
        build=lambda: ConvPoolEncoder(1, 480, 480, 512, conv1d=True, flat_input=True, normalize=True)),
    ("clap-music", "text"): dict(
        path="encoders/clap-music/text.onnx", dim=512, clips=1,
        inputs=[("input_ids", _i64([None, ROBERTA_LEN])), ("attention_mask", _i64([None, ROBERTA_LEN]))],
        build=lambda: TokenEncoder(ROBERTA_VOCAB, ROBERTA_LEN, 512, "masked-mean", normalize=True)),
    ("internvl-c", "image"): dict(
        path="encoders/internvl-c/vision.onnx", dim=768, clips=1,
        inputs=[("pixel_values", _f32([None, 3, 224, 224]))],
        build=lambda: ConvPoolEncoder(3, 14, 14, 768)),  # InternVL-C features come unnormalised
    ("internvl-c", "text"): dict(
        path="encoders/internvl-c/text.onnx", dim=768, clips=1,
        inputs=[("input_ids", _i64([None, INTERNVL_LEN]))],
        build=lambda: TokenEncoder(INTERNVL_VOCAB, INTERNVL_LEN, 768, "last")),
}

BROKEN = {
    "broken/nan-vision.onnx": dict(dim=1024, clips=1, inputs=[("pixel_values", _f32([None, 3, 224, 224]))],
                                   build=NanVision),
}

ENCODER_OUTPUT = "embedding"
EXPERT_DIMS = {expert: spec["dim"] for (expert, _), spec in ENCODERS.items()}


def seeded_encoder(relpath: str, spec: dict, seed: int) -> nn.Module:
    m = spec["build"]()
    m.reset_from(file_rng(seed, relpath))
    return m.eval()


def encoder_spec(expert: str, modality: str) -> dict:
    try:
        return ENCODERS[(expert, modality)]
    except KeyError:
        raise KeyError(f"no stand-in encoder for expert '{expert}' modality '{modality}'") from None


@torch.no_grad()
def embed_atoms(module: nn.Module, spec: dict, inputs: list[np.ndarray]) -> np.ndarray:
    """Run a stand-in encoder and average each item's clips (ImageBind audio: 3 rows per item)."""
    out = module(*[torch.from_numpy(a) for a in inputs])
    clips = spec["clips"]
    if clips > 1:
        out = out.reshape(-1, clips, out.shape[-1]).mean(1)
    return out.numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Loading modules that match the files in a models folder


def onnx_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers by name, with Identity aliases (torch dedups equal tensors that way) resolved."""
    tensors = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    return tensors


def check_onnx_weights(module: nn.Module, path: str) -> None:
    """Every state_dict tensor must be an initializer of the file, bit for bit."""
    tensors = onnx_tensors(onnx.load(path))
    for name, value in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in tensors:
            raise ValueError(f"{path}: initializer '{name}' not found")
        got = tensors[name]
        want = value.detach().cpu().numpy()
        if got.shape != want.shape or not np.array_equal(got, want):
            raise ValueError(f"{path}: '{name}' differs from the seeded weights "
                             "(generated with another seed or generator version?)")


class ModelStore:
    """Seeded torch twins of the files under a models folder, checked against those files."""

    def __init__(self, models_dir: str, seed: int, verify: bool = True, memoize: bool = False):
        self.models_dir, self.seed, self.verify = models_dir, int(seed), verify
        self._cache: dict[str, nn.Module] = {}
        self.memo: dict | None = {} if memoize else None

    def mixture(self, groups: list[tuple[str, str, int, int]]) -> Mixture:
        """groups: (source expert, projector set, in dim, out dim)."""
        return Mixture([(src, self.projectors(name, i, o)) for src, name, i, o in groups], self.memo)

    def _checked(self, relpath: str, module: nn.Module) -> nn.Module:
        path = os.path.join(self.models_dir, relpath)
        if self.verify:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: run generate_models.py --out {self.models_dir}")
            check_onnx_weights(module, path)
        self._cache[relpath] = module
        return module

    def projectors(self, set_name: str, in_dim: int, out_dim: int) -> list[Projector]:
        out = []
        for mode in MODES:
            rel = f"{set_name}/{mode}/best.onnx"
            if rel not in self._cache:
                self._checked(rel, Projector.seeded(in_dim, out_dim, self.seed, rel))
            out.append(self._cache[rel])
        return out

    def encoder(self, expert: str, modality: str) -> nn.Module:
        spec = encoder_spec(expert, modality)
        rel = spec["path"]
        if rel not in self._cache:
            self._checked(rel, seeded_encoder(rel, spec, self.seed))
        return self._cache[rel]


# ---------------------------------------------------------------------------------------------
# The six variants, shaped like upstream's classes (atoms in, space vectors out)


def _merge_factors(defaults: dict, overrides: dict | None) -> dict:
    merged = {bond: dict(mods) for bond, mods in defaults.items()}
    for bond, mods in (overrides or {}).items():
        if bond not in merged:
            raise KeyError(f"unknown bond '{bond}' (have {sorted(merged)})")
        for modality, f in mods.items():
            if modality not in merged[bond]:
                raise KeyError(f"bond '{bond}' has no factor for '{modality}'")
            if not 0.0 <= float(f) <= 1.0:
                raise ValueError(f"factor {bond}.{modality}={f} outside [0,1]")
            merged[bond][modality] = float(f)
    return merged


def _blend(f: float, projected: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """n(f·projected + (1−f)·n(current))."""
    return n(f * projected + (1.0 - f) * n(current))


PRESETS = {  # upstream's named presets; they set the CLAP combination bond only
    "versatile": {"clap": {"text": 0.1, "audio": 0.5}},
    "at-expertise": {"clap": {"text": 0.5, "audio": 0.8}},
}


class ImageBind(nn.Module):
    """The base space: n(atom) of ImageBind's own embedding."""

    name = "imagebind"
    dimension = 1024
    audio_expert = "imagebind"
    default_factors: dict = {}
    # experts whose atoms each modality needs
    needs = {"image": ("imagebind",), "audio": ("imagebind",), "text": ("imagebind",)}

    def __init__(self, store: ModelStore, factors: dict | None = None):
        super().__init__()
        self.factors = _merge_factors(self.default_factors, factors)

    def emb_images(self, atoms):
        return n(atoms["imagebind"])

    def emb_audios(self, atoms):
        return n(atoms[self.audio_expert])

    def emb_texts(self, atoms):
        return n(atoms["imagebind"])

    @torch.no_grad()
    def embed(self, modality: str, atoms: dict[str, np.ndarray | torch.Tensor]) -> np.ndarray:
        # Tensors pass through as they are (same objects: a memo can recognise them).
        t = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
             for k, v in atoms.items()}
        assert all(v.dtype == torch.float32 for v in t.values())
        fn = {"image": self.emb_images, "audio": self.emb_audios, "text": self.emb_texts}[modality]
        return fn(t).numpy().astype(np.float32)


class _ClapCombination:
    """Space combination of CLAP-General ∥ CLAP-Music (one 14-projector mixture) on top of the
    parent class's output; image passes through unchanged. Separate audio and text factors."""

    clap_sets: tuple[str, str]

    def _init_clap(self, store: ModelStore) -> None:
        g, m = self.clap_sets
        self.clap = store.mixture([("clap-general", g, 512, self.dimension),
                                   ("clap-music", m, 512, self.dimension)])

    def emb_audios(self, atoms):
        return _blend(self.factors["clap"]["audio"], self.clap(atoms), super().emb_audios(atoms))

    def emb_texts(self, atoms):
        return _blend(self.factors["clap"]["text"], self.clap(atoms), super().emb_texts(atoms))


def _with_clap(needs: dict) -> dict:
    return {m: e + (("clap-general", "clap-music") if m in ("audio", "text") else ()) for m, e in needs.items()}


class IB_PP(_ClapCombination, ImageBind):
    name = "imagebind++"
    clap_sets = ("IB_PP_G_Proj", "IB_PP_M_Proj")
    default_factors = {"clap": {"audio": 0.5, "text": 0.5}}
    needs = _with_clap(ImageBind.needs)

    def __init__(self, store, factors=None):
        super().__init__(store, factors)
        self._init_clap(store)


class InternVL_IB(ImageBind):
    """Space displacement of ImageBind into InternVL-C (768-d)."""

    name = "internvl-ib"
    dimension = 768
    default_factors = {"internvl": {"image": 0.2, "text": 0.2}}
    needs = {"image": ("imagebind", "internvl-c"), "audio": ("imagebind",), "text": ("imagebind", "internvl-c")}

    def __init__(self, store, factors=None):
        super().__init__(store, factors)
        self.to_internvl = store.mixture([("imagebind", "InternVL_IB_Proj", 1024, 768)])

    def emb_images(self, atoms):
        return _blend(self.factors["internvl"]["image"], self.to_internvl(atoms), atoms["internvl-c"])

    def emb_texts(self, atoms):
        return _blend(self.factors["internvl"]["text"], self.to_internvl(atoms), atoms["internvl-c"])

    def emb_audios(self, atoms):
        # InternVL-C has no audio: M(n(imagebind audio)). Upstream returned the unprojected 1024-d.
        return self.to_internvl(atoms)


class InternVL_IB_FT(InternVL_IB):
    """InternVL_IB with audio from the fine-tuned ImageBind audio trunk and its own 7-projector head."""

    name = "internvl-ib-ft"
    audio_expert = "imagebind-audio-ft"
    default_factors = {"internvl": {"image": 0.1, "text": 0.1}}
    needs = {**InternVL_IB.needs, "audio": ("imagebind-audio-ft",)}

    def __init__(self, store, factors=None):
        super().__init__(store, factors)
        self.ft_head = store.mixture([("imagebind-audio-ft", "InternVL_IB_FT_Audio_Head", 1024, 768)])

    def emb_audios(self, atoms):
        return self.ft_head(atoms)  # the head once (upstream applied the projectors twice)


class InternVL_IB_PP(_ClapCombination, InternVL_IB):
    name = "internvl-ib++"
    clap_sets = ("InternVL_IB_PP_G_Proj", "InternVL_IB_PP_M_Proj")
    default_factors = {"internvl": {"image": 0.2, "text": 0.2}, "clap": {"audio": 0.5, "text": 0.1}}
    needs = _with_clap(InternVL_IB.needs)

    def __init__(self, store, factors=None):
        super().__init__(store, factors)
        self._init_clap(store)


class InternVL_IB_FT_PP(_ClapCombination, InternVL_IB_FT):
    name = "internvl-ib-ft++"
    clap_sets = ("InternVL_IB_FTPP_G_Proj", "InternVL_IB_FTPP_M_Proj")
    default_factors = {"internvl": {"image": 0.1, "text": 0.1}, "clap": {"audio": 0.5, "text": 0.5}}
    needs = _with_clap(InternVL_IB_FT.needs)

    def __init__(self, store, factors=None):
        super().__init__(store, factors)
        self._init_clap(store)


VARIANTS = {cls.name: cls for cls in (ImageBind, IB_PP, InternVL_IB, InternVL_IB_FT, InternVL_IB_PP, InternVL_IB_FT_PP)}


def effective_factors(variant: str, setting: dict | None = None, preset: str | None = None) -> dict:
    """Full factors of a variant: defaults, then a preset (CLAP bond only), then explicit ones."""
    cls = VARIANTS[variant]
    factors = _merge_factors(cls.default_factors, PRESETS[preset] if preset else None)
    return _merge_factors(factors, setting)
