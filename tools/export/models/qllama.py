"""QLLaMA's text path: `InternVLModel.encode_text`, InternVL-C's text encoder.

Written for this project from a reading of OpenGVLab/InternVL's Hugging Face remote code for
InternVL-14B-224px (modeling_qllama.py, modeling_internvl.py; commit 3d78d4d). Names are upstream's
(`qllama.model.layers.N.self_attn.q_proj.weight`, `text_projection`, ...).

encode_text(ids): attention_mask = ids > 0 (padding id 0); the LLaMA decoder runs over the token
embeddings only (no query tokens, no image: the cross-attention layers are skipped), with a causal
mask plus the padding mask, rotary positions 0..L-1 (base 10000, half-split rotation), RMSNorm,
SiLU-gated MLP, final RMSNorm; the hidden state at position sum(mask) − 1 (the last real token,
right padding assumed) is multiplied by `text_projection`.

Masking: upstream adds the float32 minimum to masked scores (and clamps there); here −10000 is
added, which gives the same exactly-zero softmax weight in float32 while staying representable in
float16 (the fp16 export converts constants). Softmax in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.intern_vit import RMSNorm

ROPE_BASE = 10000.0
MASKED = -10000.0


@dataclass(frozen=True)
class TextShape:
    vocab: int
    width: int
    layers: int
    heads: int
    intermediate: int
    eps: float
    embed: int            # text_projection's output width
    length: int           # the input length of the export (80)


def rotary_tables(head_dim: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [length, head_dim] for positions 0..length-1, computed as upstream's
    FixedLlamaRotaryEmbedding does (float32 inverse frequencies, outer product, duplicated halves)."""
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _SelfAttention(nn.Module):
    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.heads = s.heads
        self.q_proj = nn.Linear(s.width, s.width, bias=False, device=device)
        self.k_proj = nn.Linear(s.width, s.width, bias=False, device=device)
        self.v_proj = nn.Linear(s.width, s.width, bias=False, device=device)
        self.o_proj = nn.Linear(s.width, s.width, bias=False, device=device)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        d = c // self.heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, n, self.heads, d).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = (q @ k.transpose(2, 3)) / float(d) ** 0.5 + bias
        return self.o_proj((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c))


class _Mlp(nn.Module):
    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.gate_proj = nn.Linear(s.width, s.intermediate, bias=False, device=device)
        self.down_proj = nn.Linear(s.intermediate, s.width, bias=False, device=device)
        self.up_proj = nn.Linear(s.width, s.intermediate, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Layer(nn.Module):
    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.self_attn = _SelfAttention(s, device=device)
        self.mlp = _Mlp(s, device=device)
        self.input_layernorm = RMSNorm(s.width, s.eps, device=device)
        self.post_attention_layernorm = RMSNorm(s.width, s.eps, device=device)

    def forward(self, x, cos, sin, bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Decoder(nn.Module):
    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab, s.width, device=device)
        self.layers = nn.ModuleList([_Layer(s, device=device) for _ in range(s.layers)])
        self.norm = RMSNorm(s.width, s.eps, device=device)


class _QLlama(nn.Module):
    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.model = _Decoder(s, device=device)


class InternVLCText(nn.Module):
    """forward(input_ids int64 [B, L]) → [B, embed] (unnormalised, as encode_text returns it)."""

    def __init__(self, s: TextShape, device=None):
        super().__init__()
        self.shape = s
        self.qllama = _QLlama(s, device=device)
        self.text_projection = nn.Parameter(torch.empty(s.width, s.embed, device=device))
        cos, sin = rotary_tables(s.width // s.heads, s.length)
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)
        causal = torch.ones(s.length, s.length, dtype=torch.bool).tril()
        self.register_buffer("causal", causal.to(device), persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = input_ids > 0
        x = self.qllama.model.embed_tokens(input_ids)
        allowed = self.causal[None, None] & real[:, None, None, :]
        bias = torch.where(allowed, torch.tensor(0.0), torch.tensor(MASKED))
        for layer in self.qllama.model.layers:
            x = layer(x, self.rope_cos, self.rope_sin, bias)
        x = self.qllama.model.norm(x)
        last = real.sum(dim=1) - 1
        pooled = torch.gather(x, 1, last[:, None, None].expand(-1, 1, x.shape[2])).squeeze(1)
        return pooled @ self.text_projection
