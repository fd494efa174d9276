"""HTS-AT, the audio tower of LAION CLAP, with its mel front end and its feature-fusion branch.

Written for this project from a reading of LAION-AI/CLAP at the laion-clap 1.1.4 release (commit
740d350, src/laion_clap/clap_module/{htsat.py,feature_fusion.py,model.py}) and torchlibrosa 0.1.0
(commit 1c4c236, torchlibrosa/stft.py), the versions FreeBind lists. Parameter and buffer names
are upstream's, so a checkpoint loads by its exact keys; block counts, widths, heads and the window
come from the checkpoint's shapes (`HtsatShape.from_shapes`).

Only the inference path that produces CLAP's audio embedding is here: upstream's `embedding`
output (the mean of the last stage's tokens after its LayerNorm). The SED head (`tscam_conv`,
`head`), SpecAugment and mixup are training or tagging parts.

Export-safe by construction (issue 10, pitfall 3): every reshape that involves the batch uses -1
instead of a Python `int` of a traced size, so an exported graph is right for every batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Fixed by laion_clap's HTSAT configs (create_htsat_model and model_configs/HTSAT-*.json), not by
# any checkpoint key: the spectrogram "image" is 256x256, cut into 4x4 patches.
SPEC_SIZE = 256
PATCH = 4
SAMPLE_RATE = 48000
HOP = 480
CLIP_SAMPLES = 480000                     # 10 s at 48 kHz
FRAMES = 1 + CLIP_SAMPLES // HOP          # 1001: centred STFT frames of one clip
AMIN = 1e-10                              # power_to_db floor (HTSAT passes amin=1e-10, ref=1.0, top_db=None)
FUSION_CHANNELS = 4                       # mel_fusion: [global, front, middle, back]


@dataclass(frozen=True)
class HtsatShape:
    """Architecture of one HTS-AT checkpoint, read from its keys and tensor shapes."""

    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window: int
    mel_bins: int
    n_fft: int
    fusion: bool          # has the aff_2d fusion branch (patch_embed.mel_conv2d + fusion_model)

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def freq_ratio(self) -> int:
        return SPEC_SIZE // self.mel_bins

    @staticmethod
    def from_shapes(shapes: Mapping[str, Sequence[int]]) -> "HtsatShape":
        """`shapes` maps the audio branch's keys (without the `audio_branch.` prefix) to shapes."""

        def need(key: str) -> Sequence[int]:
            if key not in shapes:
                raise KeyError(key)
            return tuple(shapes[key])

        proj = need("patch_embed.proj.weight")
        embed_dim = proj[0]
        if tuple(proj[1:]) != (1, PATCH, PATCH):
            raise ValueError(f"patch_embed.proj.weight has shape {list(proj)}; HTS-AT uses "
                             f"[{embed_dim}, 1, {PATCH}, {PATCH}]")
        stages = _count(shapes, "layers.")
        if stages == 0:
            raise KeyError("layers.0.blocks.0.attn.qkv.weight")
        depths, heads, windows = [], [], []
        for i in range(stages):
            depth = _count(shapes, f"layers.{i}.blocks.")
            if depth == 0:
                raise KeyError(f"layers.{i}.blocks.0.attn.qkv.weight")
            depths.append(depth)
            table = need(f"layers.{i}.blocks.0.attn.relative_position_bias_table")
            heads.append(table[1])
            windows.append((math.isqrt(table[0]) + 1) // 2)
        mel_bins = need("bn0.weight")[0]
        n_fft = need("spectrogram_extractor.stft.conv_real.weight")[2]
        fusion = "patch_embed.mel_conv2d.weight" in shapes
        shape = HtsatShape(embed_dim, tuple(depths), tuple(heads), windows[0], mel_bins, n_fft, fusion)
        for i, w in enumerate(windows):
            expected = min(shape.window, shape.grid // 2 ** i)
            if w != expected:
                raise ValueError(f"layers.{i}.blocks.0.attn.relative_position_bias_table is sized for window "
                                 f"{w}, expected {expected}")
        if SPEC_SIZE % mel_bins or (shape.grid >> (stages - 1)) < 1:
            raise ValueError(f"{mel_bins} mel bins and {stages} stages do not fit a {SPEC_SIZE}x{SPEC_SIZE} input")
        return shape

    @property
    def grid(self) -> int:
        return SPEC_SIZE // PATCH


def _count(shapes: Mapping[str, Sequence[int]], prefix: str) -> int:
    """Number of consecutive indices i with some key starting with f'{prefix}{i}.'."""
    present = set()
    for key in shapes:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                present.add(int(head))
    n = 0
    while n in present:
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Swin blocks


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a w x w window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """[nW, w*w, w*w] additive mask (0 or -100) that keeps attention inside each region after the
    cyclic shift; upstream stores it as the block's `attn_mask` buffer."""
    img = torch.zeros(1, resolution, resolution, 1)
    regions = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for h in regions:
        for w in regions:
            img[:, h, w, :] = label
            label += 1
    windows = _partition(img, window).reshape(-1, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] → [B * H/w * W/w, w, w, C]."""
    _, h, w, c = x.shape
    x = x.reshape(-1, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def _merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of _partition. The batch is -1: upstream's window_reverse computes it with a Python
    int(), which a traced export freezes at the export batch size."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int, device=None):
        super().__init__()
        self.heads = heads
        self.window = window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.empty((2 * window - 1) ** 2, heads, device=device))
        self.register_buffer("relative_position_index", relative_position_index(window).to(device))
        self.qkv = nn.Linear(dim, 3 * dim, device=device)
        self.proj = nn.Linear(dim, dim, device=device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.reshape(-1, nw, self.heads, n, n) + mask[None, :, None]).reshape(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, device=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, device=device)
        self.fc2 = nn.Linear(hidden, dim, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, device=None):
        super().__init__()
        if resolution <= window:
            # upstream: a window as large as the input does not partition and does not shift
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim, device=device)
        self.attn = WindowAttention(dim, window, heads, device=device)
        self.norm2 = nn.LayerNorm(dim, device=device)
        self.mlp = Mlp(dim, 4 * dim, device=device)
        mask = shifted_window_mask(resolution, window, shift).to(device) if shift > 0 else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, w, s = self.resolution, self.window, self.shift
        c = x.shape[-1]
        h = self.norm1(x).reshape(-1, r, r, c)
        if s > 0:
            h = torch.roll(h, shifts=(-s, -s), dims=(1, 2))
        h = self.attn(_partition(h, w).reshape(-1, w * w, c), self.attn_mask)
        h = _merge(h.reshape(-1, w, w, c), w, r, r)
        if s > 0:
            h = torch.roll(h, shifts=(s, s), dims=(1, 2))
        x = x + h.reshape(-1, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, resolution: int, device=None):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim, device=device)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, c = self.resolution, x.shape[-1]
        x = x.reshape(-1, r, r, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(-1, (r // 2) * (r // 2), 4 * c)))


class Stage(nn.Module):
    def __init__(self, dim: int, resolution: int, depth: int, heads: int, window: int, downsample: bool,
                 device=None):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2, device=device)
            for i in range(depth)])
        self.downsample = PatchMerging(dim, resolution, device=device) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


# ---------------------------------------------------------------------------------------------
# Feature fusion (CLAP-General: fusion_type 'aff_2d')


def _attention_branch(channels: int, inner: int, pooled: bool, device=None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if pooled else []
    layers += [nn.Conv2d(channels, inner, 1, device=device), nn.BatchNorm2d(inner, device=device), nn.ReLU(),
               nn.Conv2d(inner, channels, 1, device=device), nn.BatchNorm2d(channels, device=device)]
    return nn.Sequential(*layers)


class AFF(nn.Module):
    """Attentional feature fusion (feature_fusion.AFF, 2D): 2·x·w + 2·r·(1−w), w = σ(local + global)."""

    def __init__(self, channels: int, r: int = 4, device=None):
        super().__init__()
        self.local_att = _attention_branch(channels, channels // r, pooled=False, device=device)
        self.global_att = _attention_branch(channels, channels // r, pooled=True, device=device)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        xa = x + residual
        w = torch.sigmoid(self.local_att(xa) + self.global_att(xa))
        return 2 * x * w + 2 * residual * (1 - w)


class PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int, fusion: bool, device=None):
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, PATCH, stride=PATCH, device=device)
        self.norm = nn.LayerNorm(embed_dim, device=device)
        if fusion:
            # each local chunk covers a third of the time axis: stride 3x wider in time
            self.mel_conv2d = nn.Conv2d(1, embed_dim, (PATCH, 3 * PATCH), stride=(PATCH, 3 * PATCH), device=device)
            self.fusion_model = AFF(embed_dim, device=device)
        self.fusion = fusion

    def forward(self, x: torch.Tensor, longer: torch.Tensor | None) -> torch.Tensor:
        """x: [B, C, 256, 256]; C = 4 with fusion ([global, front, middle, back]), else 1.
        longer: [B] bool, rows whose three local chunks are fused into the global view."""
        g = self.proj(x[:, 0:1])
        if self.fusion:
            e, gh, gw = g.shape[1], g.shape[2], g.shape[3]
            local = self.mel_conv2d(x[:, 1:].reshape(-1, 1, SPEC_SIZE, SPEC_SIZE))
            lw = local.shape[-1]
            local = local.reshape(-1, FUSION_CHANNELS - 1, e, gh, lw).permute(0, 2, 3, 1, 4).reshape(-1, e, gh, 3 * lw)
            local = F.pad(local, (0, gw - 3 * lw)) if 3 * lw < gw else local[..., :gw]
            # Upstream fuses only the rows flagged `longer` (a per-row choice, since BatchNorm is in
            # eval mode and every op below is per row); the others keep the global view alone.
            g = torch.where(longer[:, None, None, None], self.fusion_model(g, local), g)
        return self.norm(g.flatten(2).transpose(1, 2))


# ---------------------------------------------------------------------------------------------
# Front end (CLAP-Music): torchlibrosa Spectrogram + LogmelFilterBank, weights from the checkpoint


class _Stft(nn.Module):
    def __init__(self, n_fft: int, device=None):
        super().__init__()
        self.conv_real = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=HOP, bias=False, device=device)
        self.conv_imag = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=HOP, bias=False, device=device)


class Spectrogram(nn.Module):
    """Power spectrogram as torchlibrosa computes it: reflect-pad n_fft/2 both sides (center=True),
    conv1d with the DFT basis times a periodic Hann window, real² + imag²."""

    def __init__(self, n_fft: int, device=None):
        super().__init__()
        self.n_fft = n_fft
        self.stft = _Stft(n_fft, device=device)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = F.pad(waveform[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.stft.conv_real(x) ** 2 + self.stft.conv_imag(x) ** 2     # [B, n_fft/2+1, T]


class LogmelFilterBank(nn.Module):
    def __init__(self, n_fft: int, mel_bins: int, device=None):
        super().__init__()
        self.melW = nn.Parameter(torch.empty(n_fft // 2 + 1, mel_bins, device=device))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """[B, F, T] → [B, T, mel] in dB: 10·log10(max(mel, 1e-10)) (ref 1, no top_db)."""
        mel = torch.matmul(power.transpose(1, 2), self.melW)
        return 10.0 * torch.log10(torch.clamp(mel, min=AMIN))


def time_resize_matrix(frames: int, target: int) -> torch.Tensor:
    """[target, frames] matrix M with M @ x == F.interpolate(x, (target, W), 'bicubic', align_corners=True)
    along the time axis, built by running torch's own kernel on the identity. As a MatMul it exports
    without depending on how a runtime implements cubic Resize."""
    eye = torch.eye(frames, dtype=torch.float64)[None, None]
    m = F.interpolate(eye, size=(target, frames), mode="bicubic", align_corners=True)[0, 0]
    return m.to(torch.float32)


# ---------------------------------------------------------------------------------------------
# The tower


class Htsat(nn.Module):
    """HTSAT_Swin_Transformer's inference path up to its `embedding` output.

    forward(x): with `waveform=True`, x is [B, 480000] float at 48 kHz; otherwise x is the mel input
    [B, C, 1001, mel_bins] (C = 4 with fusion, the product's `mel_fusion`). Returns [B, num_features].
    """

    def __init__(self, shape: HtsatShape, waveform: bool, device=None):
        super().__init__()
        if shape.freq_ratio * shape.mel_bins != SPEC_SIZE:
            raise ValueError(f"{shape.mel_bins} mel bins do not divide the {SPEC_SIZE}-bin spectrogram image")
        self.shape = shape
        self.waveform = waveform
        # Upstream registers the front end whether or not the fusion path uses it; its weights are
        # in every checkpoint, so they are always part of the module.
        self.spectrogram_extractor = Spectrogram(shape.n_fft, device=device)
        self.logmel_extractor = LogmelFilterBank(shape.n_fft, shape.mel_bins, device=device)
        self.bn0 = nn.BatchNorm2d(shape.mel_bins, device=device)
        self.patch_embed = PatchEmbed(shape.embed_dim, shape.fusion, device=device)
        grid = shape.grid
        self.layers = nn.ModuleList([
            Stage(shape.embed_dim * 2 ** i, grid // 2 ** i, depth, shape.heads[i], shape.window,
                  downsample=i < len(shape.depths) - 1, device=device)
            for i, depth in enumerate(shape.depths)])
        self.norm = nn.LayerNorm(shape.num_features, device=device)
        resize = time_resize_matrix(FRAMES, SPEC_SIZE * shape.freq_ratio)
        self.register_buffer("time_resize", resize.to(device), persistent=False)

    def mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, samples] → [B, 1, T, mel] log-mel, the input HTS-AT builds itself without fusion."""
        return self.logmel_extractor(self.spectrogram_extractor(waveform))[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.waveform:
            mel = self.mel(x)
            longer = None
        else:
            mel = x
            # Upstream's `longer` flag: the product's clap-fusion profile (like get_audio_features)
            # repeats the same mel 4 times for clips of at most 10 s and stacks [global, front,
            # middle, back] views for longer ones, so a row whose channels differ is a long clip.
            longer = (x[:, 1:] - x[:, 0:1]).abs().flatten(1).amax(dim=1) > 0 if self.shape.fusion else None
        h = self.bn0(mel.transpose(1, 3)).transpose(1, 3)
        h = self._to_image(h)
        h = self.patch_embed(h, longer)
        for stage in self.layers:
            h = stage(h)
        return self.norm(h).mean(dim=1)

    def _to_image(self, x: torch.Tensor) -> torch.Tensor:
        """reshape_wav2img: [B, C, 1001, mel] → bicubic to 1024 frames → [B, C, 256, 256], the
        spectrogram folded into freq_ratio rows of 256 frames each."""
        c, fr, mel = x.shape[1], self.shape.freq_ratio, self.shape.mel_bins
        x = torch.matmul(self.time_resize, x)                 # [B, C, 1024, mel]
        x = x.permute(0, 1, 3, 2).reshape(-1, c, mel, fr, SPEC_SIZE)
        return x.permute(0, 1, 3, 2, 4).reshape(-1, c, fr * mel, SPEC_SIZE)
