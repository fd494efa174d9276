"""RoBERTa encoder (the text tower of LAION CLAP), up to its pooler output.

LAION CLAP builds it with `transformers.RobertaModel.from_pretrained('roberta-base')` and reads
`pooler_output`. Written for this project from the RoBERTa architecture as transformers 4.x
implements it (the version line CLAP's checkpoints were trained with); parameter names are
transformers' (`embeddings.word_embeddings.weight`, `encoder.layer.N.attention.self.query.weight`,
...), so the checkpoint's `text_branch.*` keys load as they are.

Details that change numbers:
- position ids count only non-padding tokens, starting after the padding index:
  `cumsum(ids != pad) * (ids != pad) + pad` (fairseq's make_positions), so padding keeps position 1;
- a single token type (row 0 of `token_type_embeddings`);
- post-norm layers, LayerNorm eps 1e-5, exact (erf) GELU, attention scores / sqrt(head width),
  padded keys get −10000 added (transformers 4.x's mask: their softmax weight is exactly 0 in
  float32, and the constant stays representable in float16);
- the pooler is tanh(dense(hidden state of the first token)).
The number of heads is not stored in the weights: roberta-base and roberta-large use 64-wide heads,
so heads = width / 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

HEAD_WIDTH = 64
LAYER_NORM_EPS = 1e-5
PAD_ID = 1
MASKED = -10000.0


@dataclass(frozen=True)
class RobertaShape:
    vocab: int
    width: int
    layers: int
    intermediate: int
    positions: int
    type_vocab: int

    @property
    def heads(self) -> int:
        return self.width // HEAD_WIDTH

    @staticmethod
    def from_shapes(shapes: Mapping[str, Sequence[int]]) -> "RobertaShape":
        """`shapes` maps keys relative to the RoBERTa model (`embeddings.…`, `encoder.…`)."""

        def need(key: str) -> Sequence[int]:
            if key not in shapes:
                raise KeyError(key)
            return tuple(shapes[key])

        vocab, width = need("embeddings.word_embeddings.weight")
        positions = need("embeddings.position_embeddings.weight")[0]
        type_vocab = need("embeddings.token_type_embeddings.weight")[0]
        layers = 0
        while f"encoder.layer.{layers}.attention.self.query.weight" in shapes:
            layers += 1
        if layers == 0:
            raise KeyError("encoder.layer.0.attention.self.query.weight")
        intermediate = need("encoder.layer.0.intermediate.dense.weight")[0]
        if width % HEAD_WIDTH:
            raise ValueError(f"RoBERTa width {width} is not a multiple of the {HEAD_WIDTH}-wide heads")
        return RobertaShape(vocab, width, layers, intermediate, positions, type_vocab)


class _Embeddings(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab, s.width, device=device)
        self.position_embeddings = nn.Embedding(s.positions, s.width, device=device)
        self.token_type_embeddings = nn.Embedding(s.type_vocab, s.width, device=device)
        self.LayerNorm = nn.LayerNorm(s.width, eps=LAYER_NORM_EPS, device=device)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = (input_ids != PAD_ID).to(torch.int64)
        positions = torch.cumsum(real, dim=1) * real + PAD_ID
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0] + self.position_embeddings(positions)
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.heads = s.heads
        self.query = nn.Linear(s.width, s.width, device=device)
        self.key = nn.Linear(s.width, s.width, device=device)
        self.value = nn.Linear(s.width, s.width, device=device)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, n, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(-1, -2)) / float(c // self.heads) ** 0.5 + bias
        return (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c)


class _DenseNorm(nn.Module):
    """dense → add the residual → LayerNorm (transformers' RobertaSelfOutput / RobertaOutput)."""

    def __init__(self, d_in: int, d_out: int, device=None):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out, device=device)
        self.LayerNorm = nn.LayerNorm(d_out, eps=LAYER_NORM_EPS, device=device)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.self = _SelfAttention(s, device=device)
        self.output = _DenseNorm(s.width, s.width, device=device)


class _Intermediate(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.dense = nn.Linear(s.width, s.intermediate, device=device)


class _Layer(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.attention = _Attention(s, device=device)
        self.intermediate = _Intermediate(s, device=device)
        self.output = _DenseNorm(s.intermediate, s.width, device=device)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, bias), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Encoder(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.layer = nn.ModuleList([_Layer(s, device=device) for _ in range(s.layers)])


class _Pooler(nn.Module):
    def __init__(self, s: RobertaShape, device=None):
        super().__init__()
        self.dense = nn.Linear(s.width, s.width, device=device)


class Roberta(nn.Module):
    """forward(input_ids, attention_mask) int64 [B, L] → pooler output [B, width]."""

    def __init__(self, shape: RobertaShape, device=None):
        super().__init__()
        self.shape = shape
        self.embeddings = _Embeddings(shape, device=device)
        self.encoder = _Encoder(shape, device=device)
        self.pooler = _Pooler(shape, device=device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * MASKED
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return torch.tanh(self.pooler.dense(x[:, 0]))
