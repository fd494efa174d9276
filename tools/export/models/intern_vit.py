"""InternViT-6B and InternVL-C's attention pooling: `InternVLModel.encode_image(mode='InternVL-C')`.

Written for this project from a reading of OpenGVLab/InternVL's Hugging Face remote code for
InternVL-14B-224px (clip_benchmark/clip_benchmark/models/internvl_huggingface/
{modeling_intern_vit.py,modeling_internvl.py}, as released in commit 3d78d4d). Names are upstream's
(`vision_model.encoder.layers.N.attn.qkv.weight`, `clip_projector.cross_attn.q_bias`, ...).

The path: 14x14 patch convolution, class token, learned positions; N pre-norm blocks
`x + ls1·attn(rms1(x))`, `x + ls2·mlp(rms2(x))` with RMSNorm, optional qkv bias, and query/key
RMSNorm taken over the whole width (all heads together, as upstream does before splitting heads);
then `clip_projector`: the mean token queries all tokens through one cross-attention (LayerNorms on
query, key and value inputs, biases kept as separate parameters) and a projection to the CLIP width.
Upstream runs it in bfloat16; the export is float32 (weights upcast exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POOL_NORM_EPS = 1e-5


@dataclass(frozen=True)
class VisionShape:
    width: int
    layers: int
    heads: int
    intermediate: int
    patch: int
    image: int
    qkv_bias: bool
    qk_norm: bool
    eps: float
    pool_heads: int
    embed: int            # clip_embed_dim: the output width

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2 + 1


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · weight, computed in float32 (InternRMSNorm / LlamaRMSNorm)."""

    def __init__(self, width: int, eps: float, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width, device=device))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class _Embeddings(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(1, 1, s.width, device=device))
        self.patch_embedding = nn.Conv2d(3, s.width, s.patch, stride=s.patch, device=device)
        self.position_embedding = nn.Parameter(torch.empty(1, s.tokens, s.width, device=device))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding


class _Attention(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.heads = s.heads
        self.qkv = nn.Linear(s.width, 3 * s.width, bias=s.qkv_bias, device=device)
        if s.qk_norm:
            self.q_norm = RMSNorm(s.width, s.eps, device=device)
            self.k_norm = RMSNorm(s.width, s.eps, device=device)
        self.qk_norm = s.qk_norm
        self.proj = nn.Linear(s.width, s.width, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        q, k, v = self.qkv(x).reshape(-1, n, 3, c).unbind(2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, n, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        attn = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class _Mlp(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.fc1 = nn.Linear(s.width, s.intermediate, device=device)
        self.fc2 = nn.Linear(s.intermediate, s.width, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.attn = _Attention(s, device=device)
        self.mlp = _Mlp(s, device=device)
        self.norm1 = RMSNorm(s.width, s.eps, device=device)
        self.norm2 = RMSNorm(s.width, s.eps, device=device)
        self.ls1 = nn.Parameter(torch.empty(s.width, device=device))
        self.ls2 = nn.Parameter(torch.empty(s.width, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class _Encoder(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.layers = nn.ModuleList([_Layer(s, device=device) for _ in range(s.layers)])


class InternViT(nn.Module):
    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.embeddings = _Embeddings(s, device=device)
        self.encoder = _Encoder(s, device=device)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixel_values)
        for layer in self.encoder.layers:
            x = layer(x)
        return x


class _CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, out: int, device=None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width, bias=False, device=device)
        self.k = nn.Linear(width, width, bias=False, device=device)
        self.v = nn.Linear(width, width, bias=False, device=device)
        self.q_bias = nn.Parameter(torch.empty(width, device=device))
        self.k_bias = nn.Parameter(torch.empty(width, device=device))
        self.v_bias = nn.Parameter(torch.empty(width, device=device))
        self.proj = nn.Linear(width, out, device=device)

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        c, nk = xk.shape[2], xk.shape[1]
        d = c // self.heads
        q = F.linear(xq, self.q.weight, self.q_bias).reshape(-1, 1, self.heads, d).transpose(1, 2)
        k = F.linear(xk, self.k.weight, self.k_bias).reshape(-1, nk, self.heads, d).transpose(1, 2)
        v = F.linear(xv, self.v.weight, self.v_bias).reshape(-1, nk, self.heads, d).transpose(1, 2)
        attn = ((q * d ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, 1, c))


class AttentionPooling(nn.Module):
    """AttentionPoolingBlock: the mean token attends to every token; [B, N, C] → [B, embed]."""

    def __init__(self, width: int, heads: int, out: int, device=None):
        super().__init__()
        self.norm1_q = nn.LayerNorm(width, eps=POOL_NORM_EPS, device=device)
        self.norm1_k = nn.LayerNorm(width, eps=POOL_NORM_EPS, device=device)
        self.norm1_v = nn.LayerNorm(width, eps=POOL_NORM_EPS, device=device)
        self.cross_attn = _CrossAttention(width, heads, out, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(q, self.norm1_k(x), self.norm1_v(x)).squeeze(1)


class InternVLCVision(nn.Module):
    """forward(pixel_values [B,3,224,224]) → [B, embed] (unnormalised, as encode_image returns it)."""

    def __init__(self, s: VisionShape, device=None):
        super().__init__()
        self.shape = s
        self.vision_model = InternViT(s, device=device)
        self.clip_projector = AttentionPooling(s.width, s.pool_heads, s.embed, device=device)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip_projector(self.vision_model(pixel_values))
