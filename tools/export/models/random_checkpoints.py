"""Random-weight checkpoints in the upstream on-disk layouts, for tests (no real weights here).

- `write_clap(path, variant, rng, reduced=False)`: a LAION CLAP file as laion_clap's training saved
  it — `{"epoch", "name", "state_dict": {"module.<key>": tensor}}` — full size by default:
  HTSAT-tiny with fusion + RoBERTa-base (General) or HTSAT-base + RoBERTa-base (Music), every key
  upstream has, including those the export does not use. `reduced=True` keeps the layout (every
  stage, shifted windows, the fusion branch, the mel front end) with fewer and narrower blocks.
- `write_internvl(folder, rng, dims=REDUCED_INTERNVL)`: an InternVL-14B-224px Hugging Face folder —
  config.json and bfloat16 safetensors shards with an index — reduced by default (InternViT-6B and
  QLLaMA do not fit this machine at full size), every key upstream's InternVLModel has.

Weights are random but well scaled (Linear/Conv ~ N(0, 1/fan_in), norms near 1, BatchNorm
statistics away from the identity), so that every layer changes the output and a wrong key,
transpose or eps shows. Deterministic buffers keep their true values (Swin's relative position
index and shifted-window masks) and the mel front end gets the real torchlibrosa/librosa weights
(periodic-Hann DFT basis, Slaney mel filter bank), so its output is a true log-mel spectrogram.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from models.clap import ClapAudio, ClapText
from models.htsat import SAMPLE_RATE, HtsatShape
from models.intern_vit import InternVLCVision, VisionShape
from models.internvl import TEXT_LENGTH as INTERNVL_TEXT_LENGTH
from models.qllama import InternVLCText, TextShape
from models.roberta import RobertaShape

# laion_clap's configs and create_htsat_model: HTSAT-tiny (General) and HTSAT-base (Music).
CLAP_AUDIO = {
    "general": HtsatShape(embed_dim=96, depths=(2, 2, 6, 2), heads=(4, 8, 16, 32), window=8, mel_bins=64,
                          n_fft=1024, fusion=True),
    "music": HtsatShape(embed_dim=128, depths=(2, 2, 12, 2), heads=(4, 8, 16, 32), window=8, mel_bins=64,
                        n_fft=1024, fusion=False),
}
ROBERTA_BASE = RobertaShape(vocab=50265, width=768, layers=12, intermediate=3072, positions=514, type_vocab=1)
CLAP_JOINT = 512
# Fast stand-ins with the same layout: 4 stages of 2 blocks (shifted windows in every stage but the
# last, as at full size), 32-wide heads; a 2-layer, 64-wide RoBERTa.
REDUCED_CLAP_AUDIO = {v: HtsatShape(embed_dim=32, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8), window=8, mel_bins=64,
                                    n_fft=1024, fusion=s.fusion) for v, s in CLAP_AUDIO.items()}
REDUCED_ROBERTA = RobertaShape(vocab=50265, width=64, layers=2, intermediate=96, positions=514, type_vocab=1)
AUDIOSET_CLASSES = 527     # HTSAT's class_num: sizes its unused SED head
FMIN, FMAX = 50, 14000     # HTSAT configs


# ---------------------------------------------------------------------------------------------
# The mel front end exactly as torchlibrosa 0.1.0 builds it (librosa's window and filter bank)


def stft_basis(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """conv_real / conv_imag weights [n_fft/2+1, 1, n_fft]: the DFT basis e^{-2πi nk/N} times a
    periodic Hann window (librosa get_window('hann', fftbins=True))."""
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1)
    phase = 2 * np.pi * ((n[None, :] * k[:, None]) % n_fft) / n_fft
    real = np.cos(phase) * window[None, :]
    imag = -np.sin(phase) * window[None, :]
    return (torch.tensor(real, dtype=torch.float32)[:, None, :], torch.tensor(imag, dtype=torch.float32)[:, None, :])


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_region = f >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)


def mel_filter_bank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """melW [n_fft/2+1, n_mels]: librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) (Slaney scale and
    area normalisation, float32) transposed, as torchlibrosa's LogmelFilterBank stores it."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return torch.from_numpy(weights.T.copy())


# ---------------------------------------------------------------------------------------------
# Filling a module with plausible random weights


def randomize(module: nn.Module, rng: np.random.Generator, special: Callable[[str, torch.Tensor], bool] = None) -> None:
    """Well-scaled random values for every float parameter and BatchNorm statistic of `module`.
    `special(name, tensor)` may fill a tensor itself and return True."""

    def normal(t: torch.Tensor, mean: float, std: float) -> None:
        t.copy_(torch.from_numpy(rng.normal(mean, std, size=tuple(t.shape)).astype(np.float32)))

    with torch.no_grad():
        for prefix, m in module.named_modules():
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                full = f"{prefix}.{name}" if prefix else name
                if t is None or (special is not None and special(full, t)):
                    continue
                if name == "num_batches_tracked":
                    t.fill_(int(rng.integers(1000, 100000)))
                elif name in ("relative_position_index", "attn_mask") or not t.is_floating_point():
                    continue                      # deterministic buffers keep their computed values
                elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    if name == "running_var":
                        t.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, size=tuple(t.shape)).astype(np.float32)))
                    else:
                        normal(t, 1.0 if name == "weight" else 0.0, 0.2 if name == "weight" else 0.1)
                elif isinstance(m, nn.LayerNorm) or (name == "weight" and t.dim() == 1):
                    normal(t, 1.0 if name == "weight" else 0.0, 0.1)      # LayerNorm / RMSNorm
                elif name == "bias":
                    normal(t, 0.0, 0.02)
                elif isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                    fan_in = t[0].numel()
                    normal(t, 0.0, 1.0 / math.sqrt(fan_in))
                else:
                    normal(t, 0.0, 0.5 if t.dim() > 1 else 0.1)       # embeddings, tables, tokens


# ---------------------------------------------------------------------------------------------
# LAION CLAP


def _clap_shapes(variant: str, reduced: bool) -> tuple[HtsatShape, RobertaShape]:
    return (REDUCED_CLAP_AUDIO if reduced else CLAP_AUDIO)[variant], REDUCED_ROBERTA if reduced else ROBERTA_BASE


def _clap_unused(shape: HtsatShape, roberta: RobertaShape) -> dict[str, tuple[int, ...]]:
    """Shapes of the parts upstream saves that the embeddings do not use (models.clap.UNUSED and friends)."""
    sf = 256 // 2 ** (len(shape.depths) - 1) // 4 // (256 // shape.mel_bins)   # HTSAT's tscam_conv kernel
    out = {"audio_branch.tscam_conv.weight": (AUDIOSET_CLASSES, shape.num_features, sf, 3),
           "audio_branch.tscam_conv.bias": (AUDIOSET_CLASSES,),
           "audio_branch.head.weight": (AUDIOSET_CLASSES, AUDIOSET_CLASSES),
           "audio_branch.head.bias": (AUDIOSET_CLASSES,),
           "text_branch.embeddings.position_ids": (1, roberta.positions),
           "logit_scale_a": (), "logit_scale_t": ()}
    for part in ("audio_transform", "text_transform"):
        for i in (0, 3):
            out[f"{part}.sequential.{i}.weight"] = (CLAP_JOINT, CLAP_JOINT)
            out[f"{part}.sequential.{i}.bias"] = (CLAP_JOINT,)
    return out


def clap_layout(variant: str, reduced: bool = False) -> dict[str, list[int]]:
    """Key → shape of clap_state_dict, built on the meta device (no memory, full size in a blink)."""
    shape, roberta = _clap_shapes(variant, reduced)
    modules = (ClapAudio(shape, waveform=not shape.fusion, joint=CLAP_JOINT, device="meta"),
               ClapText(roberta, joint=CLAP_JOINT, device="meta"))
    layout = {k: list(v.shape) for m in modules for k, v in m.state_dict().items()}
    layout.update({k: list(v) for k, v in _clap_unused(shape, roberta).items()})
    return layout


def clap_state_dict(variant: str, rng: np.random.Generator, reduced: bool = False) -> dict[str, torch.Tensor]:
    """Every key of a laion_clap CLAP model (HTSAT + RoBERTa), without the `module.` prefix."""
    shape, roberta = _clap_shapes(variant, reduced)
    audio = ClapAudio(shape, waveform=not shape.fusion, joint=CLAP_JOINT)
    real, imag = stft_basis(shape.n_fft)
    mel = mel_filter_bank(SAMPLE_RATE, shape.n_fft, shape.mel_bins, FMIN, FMAX)

    def audio_special(name: str, t: torch.Tensor) -> bool:
        fixed = {"audio_branch.spectrogram_extractor.stft.conv_real.weight": real,
                 "audio_branch.spectrogram_extractor.stft.conv_imag.weight": imag,
                 "audio_branch.logmel_extractor.melW": mel}
        if name in fixed:
            t.copy_(fixed[name])
            return True
        if name.startswith("audio_branch.bn0.running_"):
            # bn0 normalises log-mel dB values: mean around -30 dB, variance of a few hundred
            lo, hi = (-40.0, -20.0) if name.endswith("mean") else (100.0, 400.0)
            t.copy_(torch.from_numpy(rng.uniform(lo, hi, size=tuple(t.shape)).astype(np.float32)))
            return True
        return False

    randomize(audio, rng, audio_special)
    text = ClapText(roberta, joint=CLAP_JOINT)
    randomize(text, rng)
    state = {**audio.state_dict(), **text.state_dict()}
    for key, size in _clap_unused(shape, roberta).items():
        if key == "text_branch.embeddings.position_ids":
            state[key] = torch.arange(roberta.positions)[None]
        elif key.startswith("logit_scale"):
            state[key] = torch.tensor(math.log(1 / 0.07))
        else:
            state[key] = torch.from_numpy(rng.normal(0.0, 0.02, size=size).astype(np.float32))
    return state


def write_clap(path: str, variant: str, rng: np.random.Generator, reduced: bool = False) -> None:
    """A random CLAP checkpoint in laion_clap's training layout (see module docstring)."""
    state = clap_state_dict(variant, rng, reduced)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"epoch": 45, "name": f"random-{variant}{'-reduced' if reduced else ''}",
                "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


# ---------------------------------------------------------------------------------------------
# InternVL-14B-224px (Hugging Face folder)

# The released model: InternViT-6B-224px + QLLaMA (LLaMA-7B layout, Chinese-LLaMA vocabulary).
FULL_INTERNVL = {
    "vision": {"hidden_size": 3200, "num_attention_heads": 25, "intermediate_size": 12800, "num_hidden_layers": 48},
    "text": {"hidden_size": 4096, "num_attention_heads": 32, "intermediate_size": 11008, "num_hidden_layers": 32,
             "vocab_size": 49954},
}
REDUCED_INTERNVL = {
    "vision": {"hidden_size": 96, "num_attention_heads": 3, "intermediate_size": 160, "num_hidden_layers": 2},
    "text": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 172, "num_hidden_layers": 2,
             "vocab_size": 49954},
}
INTERNVL_CROSS_WIDTH = 3200   # LlamaCrossAttention hard-codes the InternViT-6B width for its keys/values
INTERNVL_QUERIES = 96


def internvl_config(dims: Mapping = REDUCED_INTERNVL) -> dict:
    """config.json as the InternVL-14B-224px folder carries it, with the given widths and depths."""
    return {
        "architectures": ["InternVLModel"],
        "auto_map": {"AutoConfig": "configuration_internvl.InternVLConfig",
                     "AutoModel": "modeling_internvl.InternVLModel"},
        "model_type": "internvl", "torch_dtype": "bfloat16",
        "attn_pool_num_heads": 16, "clip_embed_dim": 768, "cross_attention_frequency": 2, "num_query_token": 96,
        "label_smoothing": 0.0, "use_backbone_lora": 0, "use_qllama_lora": 0, "force_image_size": None,
        "initializer_range": 0.02, "hidden_size": dims["text"]["hidden_size"],
        "vision_config": {"model_type": "intern_vit_6b", "architectures": ["InternVisionModel"],
                          "image_size": 224, "patch_size": 14, "num_channels": 3, "qkv_bias": False,
                          "qk_normalization": True, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
                          "use_flash_attn": True, "dropout": 0.0, "attention_dropout": 0.0, "drop_path_rate": 0.0,
                          "initializer_range": 0.02, "initializer_factor": 0.1, **dims["vision"]},
        "qllama_config": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
                          "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "initializer_range": 0.02,
                          "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
                          "torch_dtype": "float16", **dims["text"]},
    }


def internvl_state_dict(config: dict, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Every key of upstream's InternVLModel for `config`, float32."""
    vc, tc = config["vision_config"], config["qllama_config"]
    width, text_width, embed = vc["hidden_size"], tc["hidden_size"], config["clip_embed_dim"]
    vision = InternVLCVision(VisionShape(
        width=width, layers=vc["num_hidden_layers"], heads=vc["num_attention_heads"],
        intermediate=vc["intermediate_size"], patch=vc["patch_size"], image=vc["image_size"], qkv_bias=vc["qkv_bias"],
        qk_norm=vc["qk_normalization"], eps=vc["layer_norm_eps"], pool_heads=config["attn_pool_num_heads"], embed=embed))
    randomize(vision, rng)
    text = InternVLCText(TextShape(
        vocab=tc["vocab_size"], width=text_width, layers=tc["num_hidden_layers"], heads=tc["num_attention_heads"],
        intermediate=tc["intermediate_size"], eps=tc["rms_norm_eps"], embed=embed, length=INTERNVL_TEXT_LENGTH))
    randomize(text, rng)
    state = {**vision.state_dict(), **text.state_dict()}

    def rand(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return torch.from_numpy(rng.normal(mean, std, size=shape).astype(np.float32))

    # The parts InternVL-C does not use (models.internvl.UNUSED), with upstream's shapes.
    h = text_width
    for i in range(0, tc["num_hidden_layers"], config["cross_attention_frequency"]):
        p = f"qllama.model.layers.{i}.cross_attn."
        state[p + "q_proj.weight"] = rand(h, h)
        state[p + "o_proj.weight"] = rand(h, h)
        state[p + "norm1.weight"] = rand(h, std=0.1, mean=1.0)
        state[p + "k_proj.weight"] = rand(h, INTERNVL_CROSS_WIDTH)
        state[p + "v_proj.weight"] = rand(h, INTERNVL_CROSS_WIDTH)
        state[p + "norm2.weight"] = rand(INTERNVL_CROSS_WIDTH, std=0.1, mean=1.0)
    state["qllama.lm_head.weight"] = rand(tc["vocab_size"], h)
    state["query_tokens"] = rand(1, config["num_query_token"], h)
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    for n in ("norm1_q", "norm1_k", "norm1_v"):
        state[f"clip_projector2.{n}.weight"] = rand(h, std=0.1, mean=1.0)
        state[f"clip_projector2.{n}.bias"] = rand(h)
    for n in ("q", "k", "v"):
        state[f"clip_projector2.cross_attn.{n}.weight"] = rand(h, h)
        state[f"clip_projector2.cross_attn.{n}_bias"] = rand(h)
    state["clip_projector2.cross_attn.proj.weight"] = rand(embed, h)
    state["clip_projector2.cross_attn.proj.bias"] = rand(embed)
    state["itm_head.weight"] = rand(2, h)
    state["itm_head.bias"] = rand(2)
    return state


_ST_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def write_safetensors(path: str, tensors: Mapping[str, torch.Tensor]) -> None:
    """The safetensors format: u64 header length, JSON header (padded to 8 bytes), raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for key, t in tensors.items():
        t = t.contiguous().cpu()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[key] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_internvl(folder: str, rng: np.random.Generator, dims: Mapping = REDUCED_INTERNVL, shards: int = 2,
                   tokenizer: str | None = None) -> None:
    """A random InternVL-14B-224px folder: config.json, bfloat16 safetensors shards and their index
    (`model.safetensors.index.json`), and `tokenizer.model` if a SentencePiece file is given."""
    os.makedirs(folder, exist_ok=True)
    config = internvl_config(dims)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
             for k, v in internvl_state_dict(config, rng).items()}
    keys = sorted(state)
    per = math.ceil(len(keys) / shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i * per:(i + 1) * per]}
        write_safetensors(os.path.join(folder, name), part)
        weight_map.update({k: name for k in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    if tokenizer is not None:
        shutil.copyfile(tokenizer, os.path.join(folder, "tokenizer.model"))


def main(argv=None) -> None:
    """Writes a fake upstream download for trying the exporter without the real weights:
    OUT/630k-fusion-best.pt, OUT/music_speech_audioset_epoch_15_esc_89.98.pt (full size unless
    --reduced) and OUT/InternVL-14B-224px/ (always reduced)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python3 -m models.random_checkpoints", description=main.__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reduced", action="store_true", help="reduced CLAP checkpoints (same layout, fewer/narrower blocks)")
    ap.add_argument("--internvl-tokenizer", help="a LLaMA SentencePiece tokenizer.model to put in the InternVL folder")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    write_clap(os.path.join(args.out, "630k-fusion-best.pt"), "general", rng, reduced=args.reduced)
    write_clap(os.path.join(args.out, "music_speech_audioset_epoch_15_esc_89.98.pt"), "music", rng, reduced=args.reduced)
    write_internvl(os.path.join(args.out, "InternVL-14B-224px"), rng, tokenizer=args.internvl_tokenizer)


if __name__ == "__main__":
    main()
