"""Stand-ins for the third-party packages the upstream repositories import, so that upstream's own
model code runs on Debian's python3-torch (used only by make_upstream_fixtures.py).

None of timm, einops, iopath, ftfy, transformers, librosa, peft or laion_clap's training-time
dependencies is a Debian package, and PyPI is not reachable here. On the embedding path upstream
needs only a few small pieces of them; each stand-in below is either numerically inert there or
a textbook definition, and says which:

- einops.rearrange: axis permutations and merging/splitting named groups (ImageBind's
  "b l d -> l b d"); anything else raises.
- timm's DropPath (identity at inference) and trunc_normal_ (initialisation; every weight is then
  loaded from the checkpoint).
- iopath's g_pathmgr.open (the builtin open), ftfy.fix_text (identity; tokenizers are not run:
  the fixtures take token ids).
- librosa's window/filter helpers used by torchlibrosa to *initialise* the STFT and mel buffers:
  CLAP checkpoints carry those buffers (spectrogram_extractor.stft.conv_*.weight,
  logmel_extractor.melW), and they are loaded over the initial values, so only shapes matter.
- transformers: configuration and output containers, ACT2FN, logging, the PreTrainedModel shell
  (InternVL's remote code brings its own layers), and RobertaModel.
  **RobertaModel is the one stand-in that computes**: transformers (CLAP's text tower) cannot be
  installed here, so the RoBERTa trunk under laion_clap's text branch is built from PyTorch's own
  nn.TransformerEncoderLayer (post-norm, exact GELU) with RoBERTa's embeddings and pooler, loaded
  from transformers' key names. It is an implementation independent of tools/export/models/roberta.py,
  but it is not transformers: when `transformers` is importable, the generator uses it instead
  (and records which one ran).
- Packages imported only by training or data-loading code (h5py, webdataset, wget, sklearn, horovod,
  pytorchvideo, …): empty
  modules whose attributes are placeholders; calling into them is a bug and shows at once.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import importlib.util
import logging as _logging
import math
import re
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# einops


def rearrange(x: torch.Tensor, pattern: str, **sizes: int) -> torch.Tensor:
    """einops.rearrange for patterns of names and parenthesised groups of names (no ellipsis)."""
    left, right = (side.strip() for side in pattern.split("->"))

    def groups(side: str) -> list[list[str]]:
        out = []
        for m in re.finditer(r"\(([^)]*)\)|(\S+)", side):
            out.append(m.group(1).split() if m.group(1) is not None else [m.group(2)])
        return out

    lg, rg = groups(left), groups(right)
    if len(lg) != x.dim() or "..." in pattern:
        raise NotImplementedError(f"rearrange stand-in: {pattern!r} on a {x.dim()}-d tensor")
    known = dict(sizes)
    for g, n in zip(lg, x.shape):
        unknown = [a for a in g if a not in known]
        rest = math.prod(known[a] for a in g if a in known)
        if len(unknown) > 1:
            raise NotImplementedError(f"rearrange stand-in: cannot infer {unknown} in {pattern!r}")
        if unknown:
            known[unknown[0]] = n // rest
    flat_left = [a for g in lg for a in g]
    x = x.reshape([known[a] for a in flat_left])
    flat_right = [a for g in rg for a in g]
    x = x.permute([flat_left.index(a) for a in flat_right])
    return x.reshape([math.prod(known[a] for a in g) for g in rg])


# ---------------------------------------------------------------------------------------------
# timm


class DropPath(nn.Module):
    """Stochastic depth: the identity at inference (and with probability 0)."""

    def __init__(self, drop_prob: float = 0.0, *args, **kwargs):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        raise NotImplementedError("DropPath stand-in: training is not supported")


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(tensor, mean, std, a, b)


def to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


# ---------------------------------------------------------------------------------------------
# librosa (only what torchlibrosa calls to initialise buffers the checkpoints then overwrite)


def get_window(window, win_length: int, fftbins: bool = True):
    if window != "hann":
        raise NotImplementedError(f"get_window stand-in: {window!r}")
    n = np.arange(win_length)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / (win_length if fftbins else win_length - 1))


def pad_center(data=None, size=None, axis=-1, **kwargs):
    n = data.shape[axis]
    lpad = (size - n) // 2
    widths = [(0, 0)] * data.ndim
    widths[axis] = (lpad, size - n - lpad)
    return np.pad(data, widths, mode=kwargs.get("mode", "constant"))


def mel(sr=None, n_fft=None, n_mels=128, fmin=0.0, fmax=None, **kwargs):
    """Shape only: CLAP checkpoints carry logmel_extractor.melW, loaded over this."""
    return np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# transformers


class PretrainedConfig:
    def __init__(self, **kwargs):
        defaults = dict(output_attentions=False, output_hidden_states=False, use_return_dict=True, use_cache=True,
                        is_decoder=False, add_cross_attention=False, chunk_size_feed_forward=0, pad_token_id=None,
                        tie_word_embeddings=True, torch_dtype=None)
        if "return_dict" in kwargs:
            kwargs["use_return_dict"] = kwargs.pop("return_dict")
        for k, v in {**defaults, **kwargs}.items():
            setattr(self, k, v)

    def to_dict(self) -> dict:
        return dict(vars(self))


class LlamaConfig(PretrainedConfig):
    """LLaMA's configuration fields with transformers' defaults (InternVL passes every one it uses)."""

    model_type = "llama"

    def __init__(self, vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
                 rms_norm_eps=1e-6, use_cache=True, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                 tie_word_embeddings=False, **kwargs):
        super().__init__(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                         hidden_act=hidden_act, max_position_embeddings=max_position_embeddings,
                         initializer_range=initializer_range, rms_norm_eps=rms_norm_eps, use_cache=use_cache,
                         pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)


class ModelOutput(OrderedDict):
    """Attribute and key access to the fields that are not None (transformers' behaviour)."""

    def __init__(self, *args, **kwargs):
        super().__init__((k, v) for k, v in kwargs.items() if v is not None)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)

    def to_tuple(self):
        return tuple(self.values())


class PreTrainedModel(nn.Module):
    config_class = None
    base_model_prefix = ""
    supports_gradient_checkpointing = False

    def __init__(self, config, *args, **kwargs):
        super().__init__()
        self.config = config

    def post_init(self):
        pass  # weights come from the checkpoint

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class GenerationConfig:
    pass


class _Activation(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


ACT2FN = {"gelu": _Activation(F.gelu), "silu": _Activation(F.silu), "relu": _Activation(F.relu),
          "tanh": _Activation(torch.tanh)}


def _identity_decorator(*args, **kwargs):
    return lambda f: f


class RobertaStandIn(nn.Module):
    """RoBERTa's encoder from PyTorch's nn.TransformerEncoderLayer (see the module docstring)."""

    def __init__(self, vocab: int, width: int, layers: int, heads: int, intermediate: int, positions: int = 514,
                 type_vocab: int = 1, eps: float = 1e-5, pad: int = 1):
        super().__init__()
        self.pad = pad
        self.word = nn.Embedding(vocab, width, padding_idx=pad)
        self.position = nn.Embedding(positions, width)
        self.token_type = nn.Embedding(type_vocab, width)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, intermediate, dropout=0.0, activation="gelu", layer_norm_eps=eps,
                                       batch_first=True, norm_first=False) for _ in range(layers))
        self.pooler = nn.Linear(width, width)

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        real = input_ids.ne(self.pad).long()
        positions = torch.cumsum(real, dim=1) * real + self.pad  # RoBERTa: padding positions stay at pad
        x = self.word(input_ids) + self.position(positions) + self.token_type(torch.zeros_like(input_ids))
        x = self.norm(x)
        padding = attention_mask == 0
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return {"last_hidden_state": x, "pooler_output": torch.tanh(self.pooler(x[:, 0]))}

    def load_transformers_keys(self, state: dict) -> None:
        """Loads a state dict named as transformers' RobertaModel names it; every key must be used."""
        left = dict(state)

        def take(key):
            if key not in left:
                raise KeyError(f"RoBERTa stand-in: no {key}")
            return left.pop(key)

        mine = {"word.weight": take("embeddings.word_embeddings.weight"),
                "position.weight": take("embeddings.position_embeddings.weight"),
                "token_type.weight": take("embeddings.token_type_embeddings.weight"),
                "norm.weight": take("embeddings.LayerNorm.weight"), "norm.bias": take("embeddings.LayerNorm.bias"),
                "pooler.weight": take("pooler.dense.weight"), "pooler.bias": take("pooler.dense.bias")}
        left.pop("embeddings.position_ids", None)  # a buffer older transformers saved
        for i in range(len(self.layers)):
            p, q = f"encoder.layer.{i}.", f"layers.{i}."
            for kind in ("weight", "bias"):
                mine[q + f"self_attn.in_proj_{kind}"] = torch.cat(
                    [take(p + f"attention.self.{n}.{kind}") for n in ("query", "key", "value")])
                mine[q + f"self_attn.out_proj.{kind}"] = take(p + f"attention.output.dense.{kind}")
                mine[q + f"norm1.{kind}"] = take(p + f"attention.output.LayerNorm.{kind}")
                mine[q + f"linear1.{kind}"] = take(p + f"intermediate.dense.{kind}")
                mine[q + f"linear2.{kind}"] = take(p + f"output.dense.{kind}")
                mine[q + f"norm2.{kind}"] = take(p + f"output.LayerNorm.{kind}")
        if left:
            raise KeyError(f"RoBERTa stand-in: unused keys {sorted(left)[:4]}")
        self.load_state_dict(mine, strict=True)


class _RobertaFactory:
    """transformers.RobertaModel as laion_clap calls it (`from_pretrained('roberta-base')`): the
    generator replaces the returned placeholder with a RobertaStandIn of the checkpoint's size."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        placeholder = nn.Module()
        placeholder.embeddings = nn.Module()  # CLAP's constructor reads the width from here
        placeholder.embeddings.word_embeddings = nn.Embedding(1, 768)
        return placeholder


# ---------------------------------------------------------------------------------------------
# Installing the modules


class _Placeholder:
    """What a training-only import yields; using it on the embedding path is an error."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError("a stand-in for a training-only dependency was called on the embedding path")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()


class _LooseModule(types.ModuleType):
    """A module whose unknown attributes are placeholders (names imported by code that never runs here)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder


def _module(name: str, loose: bool = False, **attrs) -> types.ModuleType:
    m = (_LooseModule if loose else types.ModuleType)(name)
    m.__path__ = []  # a package, so that submodules can be registered under it
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


class _LooseFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any submodule of the training-only packages imports as a loose module."""

    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.roots and name not in sys.modules:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _LooseModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


TRAINING_ONLY = ("h5py", "braceexpand", "webdataset", "wget", "pandas", "sklearn", "horovod", "soundfile", "tqdm",
                 "peft", "audioread", "numba", "pytorchvideo")  # not apex, flash_attn: upstream falls back without them


def install(use_transformers: bool) -> str:
    """Registers the stand-ins; returns which RoBERTa runs ('transformers x.y' or the stand-in)."""
    _module("einops", rearrange=rearrange)
    timm_layers = dict(DropPath=DropPath, trunc_normal_=trunc_normal_, to_2tuple=to_2tuple)
    _module("timm", loose=True)
    _module("timm.layers", loose=True, **timm_layers)
    _module("timm.models", loose=True)
    _module("timm.models.layers", loose=True, **timm_layers)
    _module("iopath")
    _module("iopath.common")
    _module("iopath.common.file_io", g_pathmgr=types.SimpleNamespace(open=builtins.open))
    _module("ftfy", fix_text=lambda s: s)
    _module("packaging")
    _module("packaging.version", parse=lambda v: tuple(int(p) for p in re.findall(r"\d+", str(v))[:3]))
    lib = _module("librosa", loose=True)
    lib.filters = _module("librosa.filters", loose=True, get_window=get_window, mel=mel)
    lib.util = _module("librosa.util", loose=True, pad_center=pad_center)
    sys.meta_path.insert(0, _LooseFinder(TRAINING_ONLY))
    if use_transformers:
        try:
            import transformers
            return f"transformers {transformers.__version__}"
        except ImportError:
            pass
    utils = dict(add_start_docstrings=_identity_decorator, add_start_docstrings_to_model_forward=_identity_decorator,
                 replace_return_docstrings=_identity_decorator,
                 logging=types.SimpleNamespace(get_logger=_logging.getLogger))
    outputs = {n: ModelOutput for n in ("BaseModelOutput", "BaseModelOutputWithPooling", "BaseModelOutputWithPast",
                                        "CausalLMOutputWithPast", "BaseModelOutputWithPastAndCrossAttentions",
                                        "BaseModelOutputWithPoolingAndCrossAttentions")}
    _module("transformers", loose=True, __version__="stand-in", PretrainedConfig=PretrainedConfig,
            LlamaConfig=LlamaConfig, GenerationConfig=GenerationConfig, RobertaModel=_RobertaFactory, **utils)
    _module("transformers.configuration_utils", PretrainedConfig=PretrainedConfig)
    _module("transformers.utils", **utils)
    _module("transformers.activations", ACT2FN=ACT2FN)
    _module("transformers.modeling_outputs", **outputs)
    _module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    _module("transformers.tokenization_utils_base", loose=True)
    return "stand-in: PyTorch nn.TransformerEncoderLayer (transformers is not installed)"
