"""LAION CLAP checkpoints → the audio and text encoders of CLAP-General and CLAP-Music.

FreeBind uses two checkpoints through laion_clap 1.1.4's `CLAP_Module`:
- CLAP-General, `630k-fusion-best.pt`: HTSAT-tiny with the `aff_2d` feature-fusion branch
  (`enable_fusion=True`), RoBERTa-base text; the product feeds it `mel_fusion` [B,4,1001,64].
- CLAP-Music, `music_speech_audioset_epoch_15_esc_89.98.pt`: HTSAT-base without fusion, RoBERTa-base
  text; the product feeds it the 10 s `waveform` [B,480000], so the STFT, mel filter bank and dB
  conversion are inside the exported graph (torchlibrosa's conv1d STFT, weights from the checkpoint).

Each encoder ends as upstream's `get_audio_embedding` / `get_text_embedding` do: the tower's
embedding (HTS-AT's pooled tokens, RoBERTa's pooler output) → the 2-layer projection
(Linear, ReLU, Linear) → L2 normalisation.

On disk (factory.load_state_dict): `{"epoch", "name", "state_dict": {"module.<key>": tensor},
"optimizer", ...}`; the `module.` prefix comes from DistributedDataParallel. Files without the
`state_dict` wrapper or without the prefix load too, as upstream allows.

Long clips (CLAP-General): see htsat.Htsat.forward and tools/export/README.md — `longer` is derived
per row from the input, and the fusion branch is applied to exactly those rows.
"""

from __future__ import annotations

import fnmatch
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import checkpoints as C
from contract import Export, FLOAT32, INT64, Input, token_ids
from models.htsat import CLIP_SAMPLES, FRAMES, FUSION_CHANNELS, Htsat, HtsatShape
from models.roberta import PAD_ID, Roberta, RobertaShape

VARIANTS = {
    # variant: (expert, whether the checkpoint has the fusion branch, the file FreeBind uses)
    "general": ("clap-general", True, "630k-fusion-best.pt"),
    "music": ("clap-music", False, "music_speech_audioset_epoch_15_esc_89.98.pt"),
}
TEXT_LENGTH = 77
BOS, EOS = 0, 2

# Keys a CLAP checkpoint carries that the embeddings do not use, and why that is harmless.
UNUSED = {
    "logit_scale_a": "contrastive temperature, used only by the training loss",
    "logit_scale_t": "contrastive temperature, used only by the training loss",
    "audio_transform.*": "MLP on the audio embedding, used only by the training loss",
    "text_transform.*": "MLP on the text embedding, used only by the training loss",
}
AUDIO_UNUSED = {
    "tscam_conv.*": "HTS-AT's sound-event head (framewise/clipwise AudioSet outputs), not the embedding",
    "head.*": "HTS-AT's classification head, not the embedding",
}
TEXT_UNUSED = {
    "embeddings.position_ids": "arange buffer saved by transformers < 4.31; positions are computed from the ids",
}
PARTS = ("audio_branch.", "audio_projection.", "text_branch.", "text_projection.")
FRONT_END = ("audio_branch.spectrogram_extractor", "audio_branch.logmel_extractor")


class ClapAudio(nn.Module):
    """forward(mel_fusion [B,4,1001,64] | waveform [B,480000]) → [B, joint] unit rows."""

    def __init__(self, shape: HtsatShape, waveform: bool, joint: int, device=None):
        super().__init__()
        self.audio_branch = Htsat(shape, waveform, device=device)
        self.audio_projection = _projection(shape.num_features, joint, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_projection(self.audio_branch(x)), dim=-1)


class ClapText(nn.Module):
    """forward(input_ids, attention_mask) int64 [B,77] → [B, joint] unit rows."""

    def __init__(self, shape: RobertaShape, joint: int, device=None):
        super().__init__()
        self.text_branch = Roberta(shape, device=device)
        self.text_projection = _projection(shape.width, joint, device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text_branch(input_ids, attention_mask)), dim=-1)


def _projection(d_in: int, joint: int, device) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, joint, device=device), nn.ReLU(), nn.Linear(joint, joint, device=device))


# ---------------------------------------------------------------------------------------------
# Reading a checkpoint


def weights_of(state: C.StateDict) -> C.StateDict:
    """The model's keys, whichever of upstream's accepted wrappings the file uses."""
    for prefix in ("state_dict.module.", "state_dict.", "module.", ""):
        if f"{prefix}audio_branch.bn0.weight" in state:
            return state.under(prefix)
    C.require(state, "state_dict.module.audio_branch.bn0.weight", "a LAION CLAP checkpoint")
    raise AssertionError("unreachable")


def _shapes(state: C.StateDict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(state[k].shape) for k in state}


def _check_parts(weights: C.StateDict, what: str) -> None:
    """Every key belongs to a tower we export or to a known unused part."""
    unknown = [k for k in weights
               if not k.startswith(PARTS) and not any(fnmatch.fnmatchcase(k, p) for p in UNUSED)]
    if unknown:
        raise C.CheckpointError(f"'{weights.source}' does not fit {what}: unexpected "
                                f"{', '.join(weights.prefix + k for k in unknown[:6])}")


def audio_shape(weights: C.StateDict, what: str) -> HtsatShape:
    try:
        return HtsatShape.from_shapes(_shapes(weights.under("audio_branch.")))
    except KeyError as e:
        raise C.CheckpointError(f"'{weights.source}' does not fit {what}: missing "
                                f"{weights.prefix}audio_branch.{e.args[0]}") from None
    except ValueError as e:
        raise C.CheckpointError(f"'{weights.source}' does not fit {what}: {e}") from None


def text_shape(weights: C.StateDict, what: str) -> RobertaShape:
    try:
        return RobertaShape.from_shapes(_shapes(weights.under("text_branch.")))
    except KeyError as e:
        raise C.CheckpointError(f"'{weights.source}' does not fit {what}: missing "
                                f"{weights.prefix}text_branch.{e.args[0]}") from None
    except ValueError as e:
        raise C.CheckpointError(f"'{weights.source}' does not fit {what}: {e}") from None


def _joint(weights: C.StateDict, part: str) -> int:
    return int(C.require(weights, f"{part}.2.weight", "a LAION CLAP checkpoint").shape[0])


def load_audio(weights: C.StateDict, variant: str) -> ClapAudio:
    expert, fusion, _ = VARIANTS[variant]
    what = f"the {expert} audio encoder"
    shape = audio_shape(weights, what)
    if shape.fusion != fusion:
        has = "has" if shape.fusion else "lacks"
        raise C.CheckpointError(
            f"'{weights.source}' {has} HTS-AT's feature-fusion branch, so it is not the {expert} checkpoint "
            f"(expected {VARIANTS[variant][2]}): check that --clap-general and --clap-music are not swapped")
    module = ClapAudio(shape, waveform=not fusion, joint=_joint(weights, "audio_projection"), device=weights.device)
    C.load_exact(module.audio_branch, weights.under("audio_branch."), what=what, tolerate=list(AUDIO_UNUSED))
    C.load_exact(module.audio_projection, weights.under("audio_projection."), what=f"{what}'s projection")
    return module.eval()


def load_text(weights: C.StateDict, variant: str) -> ClapText:
    expert = VARIANTS[variant][0]
    what = f"the {expert} text encoder"
    shape = text_shape(weights, what)
    module = ClapText(shape, joint=_joint(weights, "text_projection"), device=weights.device)
    C.load_exact(module.text_branch, weights.under("text_branch."), what=what, tolerate=list(TEXT_UNUSED))
    C.load_exact(module.text_projection, weights.under("text_projection."), what=f"{what}'s projection")
    return module.eval()


# ---------------------------------------------------------------------------------------------
# Exports


def exports(source, variant: str) -> Iterator[Export]:
    """encoders/clap-<variant>/audio.onnx, then encoders/clap-<variant>/text.onnx."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}")
    expert, fusion, file_name = VARIANTS[variant]
    state = C.open_state(source)
    weights = weights_of(state)
    _check_parts(weights, f"a LAION CLAP checkpoint ({file_name})")

    audio = load_audio(weights, variant)
    shape = audio.audio_branch.shape
    facts = {"htsat": {"embed_dim": shape.embed_dim, "depths": list(shape.depths), "heads": list(shape.heads),
                       "window": shape.window, "fusion": shape.fusion},
             "unused_keys": {**UNUSED, **{f"audio_branch.{k}": v for k, v in AUDIO_UNUSED.items()},
                             **{f"text_branch.{k}": v for k, v in TEXT_UNUSED.items()}}}
    if fusion:
        facts["long_clips"] = ("longer = any of channels 1-3 differs from channel 0, per row; the fusion branch "
                               "(mel_conv2d + AFF) is applied to those rows only, as upstream does for longer=True")
        inputs = (Input("mel_fusion", FLOAT32, (FUSION_CHANNELS, FRAMES, shape.mel_bins)),)
        random = lambda rng, rows, bins=shape.mel_bins: _random_mel_fusion(rng, rows, bins)
        profile = "clap-fusion"
    else:
        facts["front_end"] = "torchlibrosa STFT (reflect pad, conv1d DFT x periodic Hann) + mel + 10*log10, in the graph"
        inputs = (Input("waveform", FLOAT32, (CLIP_SAMPLES,)),)
        random = _random_waveform
        profile = "clap"
    yield Export(file=f"encoders/{expert}/audio.onnx", module=audio, inputs=inputs,
                 width=audio.audio_projection[2].out_features, random_inputs=random, profile=profile,
                 upstream=_upstream_audio(state.source, variant), facts=facts,
                 # a loud tone's STFT power passes float16's 65504 and the 1e-10 dB floor is 0 there
                 float32_scopes=() if fusion else FRONT_END)
    del audio

    text = load_text(weights, variant)
    vocab = text.text_branch.shape.vocab
    yield Export(file=f"encoders/{expert}/text.onnx", module=text,
                 inputs=(Input("input_ids", INT64, (TEXT_LENGTH,)), Input("attention_mask", INT64, (TEXT_LENGTH,))),
                 width=text.text_projection[2].out_features,
                 random_inputs=lambda rng, rows: list(token_ids(rng, rows, TEXT_LENGTH, low=3, high=vocab,
                                                                bos=BOS, eos=EOS, pad=PAD_ID)),
                 profile="clap-text", upstream=_upstream_text(state.source, variant),
                 facts={"roberta": {"layers": text.text_branch.shape.layers, "width": text.text_branch.shape.width,
                                    "heads": text.text_branch.shape.heads}})


def _random_mel_fusion(rng: np.random.Generator, rows: int, bins: int) -> list[np.ndarray]:
    """Log-mel-like rows in dB; even rows are short clips (4 equal channels), odd rows long ones."""
    base = rng.normal(-30.0, 15.0, size=(rows, 1, FRAMES, bins)).astype(np.float32)
    mel = np.repeat(base, FUSION_CHANNELS, axis=1)
    for r in range(1, rows, 2):
        mel[r, 1:] = rng.normal(-30.0, 15.0, size=(FUSION_CHANNELS - 1, FRAMES, bins))
    return [mel]


def _random_waveform(rng: np.random.Generator, rows: int) -> list[np.ndarray]:
    """Noise plus a tone per row, quantised to int16 steps as upstream's loader does."""
    t = np.arange(CLIP_SAMPLES) / 48000.0
    x = rng.normal(0.0, 0.05, size=(rows, CLIP_SAMPLES))
    x += 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000, size=(rows, 1)) * t)
    return [(np.trunc(np.clip(x, -1, 1) * 32767.0) / 32767.0).astype(np.float32)]


# ---------------------------------------------------------------------------------------------
# --verify-upstream: laion_clap's own forward on the same inputs


def _upstream_module(source: str, variant: str):
    import laion_clap  # noqa: F401  (ImportError names the package when absent)
    fusion = VARIANTS[variant][1]
    model = laion_clap.CLAP_Module(enable_fusion=fusion, amodel="HTSAT-tiny" if fusion else "HTSAT-base",
                                   device="cpu")
    model.load_ckpt(source)
    return model.model.eval()


def _upstream_audio(source: str, variant: str):
    def build():
        clap = _upstream_module(source, variant)
        fusion = VARIANTS[variant][1]

        def run(x: torch.Tensor) -> torch.Tensor:
            if fusion:
                longer = (x[:, 1:] != x[:, 0:1]).flatten(1).any(dim=1)
                rows = [{"mel_fusion": x[i], "longer": longer[i:i + 1]} for i in range(x.shape[0])]
            else:
                rows = [{"waveform": x[i]} for i in range(x.shape[0])]
            with torch.no_grad():
                return clap.get_audio_embedding(rows)
        return run
    return build


def _upstream_text(source: str, variant: str):
    def build():
        clap = _upstream_module(source, variant)

        def run(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return clap.get_text_embedding({"input_ids": input_ids, "attention_mask": attention_mask})
        return run
    return build
