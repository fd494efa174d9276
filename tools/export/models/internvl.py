"""InternVL-14B-224px (Hugging Face folder) → InternVL-C's vision and text encoders.

The folder holds `config.json` and the weights (`model.safetensors[.index.json]` shards or
`pytorch_model.bin[.index.json]`; upstream publishes bfloat16). FreeBind calls
`model.encode_image(pixel_values, mode='InternVL-C')` and `model.encode_text(input_ids)`:
- vision: InternViT-6B (48 blocks, width 3200, 25 heads) + `clip_projector` → [B, 768];
- text: QLLaMA's decoder (32 blocks, width 4096, 32 heads, vocabulary 49954) → `text_projection` → [B, 768].
See models/intern_vit.py and models/qllama.py for the maths.

Block counts and widths come from the keys; head counts, norm eps and activations from config.json
(defaults as upstream's InternVLConfig/LlamaConfig when a field is absent), and every width the
config states must agree with the weights. The export is float32: the 6B-parameter vision tower
needs about 24 GB of RAM and the 7B text decoder about 27 GB (see docs/export.md).
"""

from __future__ import annotations

import fnmatch
import json
import os
from typing import Iterator

import numpy as np
import torch

import checkpoints as C
from contract import Export, FLOAT32, INT64, Input
from models.intern_vit import InternVLCVision, VisionShape
from models.qllama import InternVLCText, TextShape

EXPERT = "internvl-c"
TEXT_LENGTH = 80
IMAGE = 224
BOS, EOS, PAD = 1, 2, 0

# Upstream's defaults for fields a config.json may omit (InternVisionConfig, LlamaConfig, InternVLConfig).
VISION_DEFAULTS = {"num_attention_heads": 25, "layer_norm_eps": 1e-6, "hidden_act": "gelu", "patch_size": 14,
                   "image_size": 224, "qkv_bias": False, "qk_normalization": True}
TEXT_DEFAULTS = {"num_attention_heads": 32, "rms_norm_eps": 1e-6, "hidden_act": "silu"}
MODEL_DEFAULTS = {"attn_pool_num_heads": 16, "use_backbone_lora": 0, "use_qllama_lora": 0, "force_image_size": None}

# Keys of the checkpoint that InternVL-C does not use, and why that is harmless.
UNUSED = {
    "qllama.lm_head.weight": "QLLaMA's language-model head, used for captioning only",
    "qllama.model.layers.*.cross_attn.*": "cross-attention to image tokens: InternVL-G and captioning; "
                                           "encode_text passes no image, so upstream skips these layers",
    "query_tokens": "InternVL-G's learnable queries",
    "clip_projector2.*": "InternVL-G's pooling of the query tokens",
    "itm_head.*": "image-text matching head, used in training",
    "logit_scale": "contrastive temperature, used only for logits",
    "qllama.model.layers.*.self_attn.rotary_emb.inv_freq":
        "rotary frequencies saved by older transformers; upstream recomputes them (FixedLlamaRotaryEmbedding)",
}
VISION_PARTS = ("vision_model.", "clip_projector.")
TEXT_PARTS = ("qllama.model.embed_tokens.", "qllama.model.layers.", "qllama.model.norm.", "text_projection")


def read_config(folder: str) -> dict:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise C.CheckpointError(f"'{folder}' has no config.json: pass the InternVL-14B-224px Hugging Face folder "
                                f"as downloaded")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except ValueError:
        raise C.CheckpointError(f"'{path}' is not valid JSON: download it again") from None
    if not isinstance(config, dict) or "vision_config" not in config or "qllama_config" not in config:
        raise C.CheckpointError(f"'{path}' is not an InternVL config (no vision_config/qllama_config): "
                                f"--internvl needs the InternVL-14B-224px folder")
    if (config.get("use_backbone_lora") or 0) or (config.get("use_qllama_lora") or 0):
        raise C.CheckpointError(f"'{path}' enables LoRA adapters (use_backbone_lora/use_qllama_lora); merge them "
                                f"into the weights first, the exporter reads plain InternVL-14B-224px weights")
    forced = config.get("force_image_size")
    if forced not in (None, IMAGE):
        raise C.CheckpointError(f"'{path}' sets force_image_size {forced}; the product feeds {IMAGE}x{IMAGE} images")
    return config


def _get(section: dict, key: str, defaults: dict):
    return section.get(key, defaults.get(key))


def _agree(what: str, source: str, config_value, weights_value) -> None:
    if config_value is not None and int(config_value) != int(weights_value):
        raise C.CheckpointError(f"'{source}': config.json says {what} is {config_value} but the weights have "
                                f"{weights_value}: the config and the weights come from different models")


def vision_shape(state: C.StateDict, config: dict) -> VisionShape:
    vc = config["vision_config"]
    pos = C.require(state, "vision_model.embeddings.position_embedding", "the InternVL-14B-224px weights")
    conv = C.require(state, "vision_model.embeddings.patch_embedding.weight", "the InternVL-14B-224px weights")
    width, patch = int(conv.shape[0]), int(conv.shape[2])
    layers = C.count_indexed(state, "vision_model.encoder.layers.")
    fc1 = C.require(state, "vision_model.encoder.layers.0.mlp.fc1.weight", "the InternVL-14B-224px weights")
    proj = C.require(state, "clip_projector.cross_attn.proj.weight", "the InternVL-14B-224px weights")
    _agree("vision_config.hidden_size", state.source, vc.get("hidden_size"), width)
    _agree("vision_config.num_hidden_layers", state.source, vc.get("num_hidden_layers"), layers)
    _agree("vision_config.intermediate_size", state.source, vc.get("intermediate_size"), fc1.shape[0])
    _agree("vision_config.patch_size", state.source, vc.get("patch_size"), patch)
    _agree("clip_embed_dim", state.source, config.get("clip_embed_dim"), proj.shape[0])
    image = int(_get(vc, "image_size", VISION_DEFAULTS))
    if image != IMAGE or (image // patch) ** 2 + 1 != pos.shape[1]:
        raise C.CheckpointError(f"'{state.source}': the vision tower is for {image}px images with "
                                f"{pos.shape[1]} positions; InternVL-C is exported for {IMAGE}px")
    if _get(vc, "hidden_act", VISION_DEFAULTS) != "gelu":
        raise C.CheckpointError(f"'{state.source}': vision_config.hidden_act is {vc['hidden_act']}, the exporter "
                                f"implements InternViT-6B's gelu")
    heads = int(_get(vc, "num_attention_heads", VISION_DEFAULTS))
    pool_heads = int(_get(config, "attn_pool_num_heads", MODEL_DEFAULTS))
    for name, h in (("vision_config.num_attention_heads", heads), ("attn_pool_num_heads", pool_heads)):
        if h <= 0 or width % h:
            raise C.CheckpointError(f"'{state.source}': {name} {h} does not divide the vision width {width}")
    return VisionShape(width=width, layers=layers, heads=heads, intermediate=int(fc1.shape[0]), patch=patch,
                       image=image, qkv_bias="vision_model.encoder.layers.0.attn.qkv.bias" in state,
                       qk_norm="vision_model.encoder.layers.0.attn.q_norm.weight" in state,
                       eps=float(_get(vc, "layer_norm_eps", VISION_DEFAULTS)), pool_heads=pool_heads,
                       embed=int(proj.shape[0]))


def text_shape(state: C.StateDict, config: dict) -> TextShape:
    tc = config["qllama_config"]
    emb = C.require(state, "qllama.model.embed_tokens.weight", "the InternVL-14B-224px weights")
    proj = C.require(state, "text_projection", "the InternVL-14B-224px weights")
    gate = C.require(state, "qllama.model.layers.0.mlp.gate_proj.weight", "the InternVL-14B-224px weights")
    vocab, width = int(emb.shape[0]), int(emb.shape[1])
    layers = C.count_indexed(state, "qllama.model.layers.")
    _agree("qllama_config.hidden_size", state.source, tc.get("hidden_size"), width)
    _agree("qllama_config.vocab_size", state.source, tc.get("vocab_size"), vocab)
    _agree("qllama_config.num_hidden_layers", state.source, tc.get("num_hidden_layers"), layers)
    _agree("qllama_config.intermediate_size", state.source, tc.get("intermediate_size"), gate.shape[0])
    if _get(tc, "hidden_act", TEXT_DEFAULTS) != "silu":
        raise C.CheckpointError(f"'{state.source}': qllama_config.hidden_act is {tc['hidden_act']}, the exporter "
                                f"implements LLaMA's silu")
    heads = int(_get(tc, "num_attention_heads", TEXT_DEFAULTS))
    if heads <= 0 or width % heads or (width // heads) % 2:
        raise C.CheckpointError(f"'{state.source}': qllama_config.num_attention_heads {heads} does not split the "
                                f"width {width} into even-sized rotary heads")
    if proj.dim() != 2 or proj.shape[0] != width:
        raise C.CheckpointError(f"'{state.source}': text_projection is {list(proj.shape)}, expected [{width}, …]")
    return TextShape(vocab=vocab, width=width, layers=layers, heads=heads, intermediate=int(gate.shape[0]),
                     eps=float(_get(tc, "rms_norm_eps", TEXT_DEFAULTS)), embed=int(proj.shape[1]), length=TEXT_LENGTH)


def _check_parts(state: C.StateDict) -> None:
    """Every key belongs to a tower we export or to a known unused part."""
    unknown = [k for k in state if not k.startswith(VISION_PARTS + TEXT_PARTS)
               and not any(fnmatch.fnmatchcase(k, p) for p in UNUSED)]
    if unknown:
        raise C.CheckpointError(f"'{state.source}' does not fit InternVL-14B-224px: unexpected {', '.join(unknown[:6])}")


def load_vision(state: C.StateDict, config: dict) -> InternVLCVision:
    shape = vision_shape(state, config)
    module = InternVLCVision(shape, device=state.device)
    C.load_exact(module.vision_model, state.under("vision_model."), what="InternViT-6B (vision_model)")
    C.load_exact(module.clip_projector, state.under("clip_projector."), what="InternVL-C's clip_projector")
    return module.eval()


def load_text(state: C.StateDict, config: dict) -> InternVLCText:
    shape = text_shape(state, config)
    module = InternVLCText(shape, device=state.device)
    C.load_exact(module.qllama.model, state.under("qllama.model."), what="QLLaMA (qllama.model)",
                 tolerate=["layers.*.cross_attn.*", "layers.*.self_attn.rotary_emb.inv_freq"])
    proj = state["text_projection"]
    if not proj.is_meta and not module.text_projection.is_meta:
        if not bool(torch.isfinite(proj).all()):
            raise C.CheckpointError(f"'{state.source}': text_projection holds NaN or infinite values: "
                                    f"the checkpoint is damaged")
        with torch.no_grad():
            module.text_projection.copy_(proj.to(torch.float32))
    return module.eval()


def exports(source, config: dict | None = None) -> Iterator[Export]:
    """encoders/internvl-c/vision.onnx, then encoders/internvl-c/text.onnx. `source` is the Hugging Face
    folder (or an open StateDict, then `config` is its parsed config.json)."""
    if config is None:
        config = read_config(os.fspath(source))
    state = C.open_state(source)
    C.require(state, "vision_model.embeddings.patch_embedding.weight", "the InternVL-14B-224px weights")
    _check_parts(state)

    vision = load_vision(state, config)
    vs = vision.shape
    yield Export(file=f"encoders/{EXPERT}/vision.onnx", module=vision,
                 inputs=(Input("pixel_values", FLOAT32, (3, IMAGE, IMAGE)),), width=vs.embed,
                 random_inputs=_random_pixels, profile="internvl-vision",
                 upstream=_upstream(state.source, "image"),
                 facts={"vision": {"layers": vs.layers, "width": vs.width, "heads": vs.heads,
                                   "qk_normalization": vs.qk_norm, "qkv_bias": vs.qkv_bias},
                        "precision": "float32 (upstream runs bfloat16)", "unused_keys": UNUSED})
    del vision
    state.release()

    text = load_text(state, config)
    ts = text.shape
    yield Export(file=f"encoders/{EXPERT}/text.onnx", module=text,
                 inputs=(Input("input_ids", INT64, (TEXT_LENGTH,)),), width=ts.embed,
                 random_inputs=lambda rng, rows, v=ts.vocab: [_random_ids(rng, rows, v)], profile="internvl-text",
                 upstream=_upstream(state.source, "text"),
                 facts={"text": {"layers": ts.layers, "width": ts.width, "heads": ts.heads, "vocab": ts.vocab},
                        "pooling": "hidden state at sum(ids > 0) - 1 (right padding with 0)",
                        "precision": "float32 (upstream runs bfloat16)"})
    state.release()


def _random_pixels(rng: np.random.Generator, rows: int) -> list[np.ndarray]:
    """ImageNet-normalised pixels: uniform [0, 1] images through (x − mean) / std."""
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    return [((rng.random((rows, 3, IMAGE, IMAGE), dtype=np.float32) - mean) / std).astype(np.float32)]


def _random_ids(rng: np.random.Generator, rows: int, vocab: int) -> np.ndarray:
    """BOS, 'summarize:'-like content, EOS, right padding with 0; row 0 fills all 80 positions."""
    ids = np.full((rows, TEXT_LENGTH), PAD, dtype=np.int64)
    for r in range(rows):
        n = TEXT_LENGTH - 2 if r == 0 else int(rng.integers(1, TEXT_LENGTH - 1))
        ids[r, :n + 2] = [BOS, *rng.integers(3, vocab, size=n), EOS]
    return ids


def _upstream(source: str, mode: str):
    """--verify-upstream: the Hugging Face remote code of the folder, run in float32."""
    def build():
        from transformers import AutoModel  # ImportError names the package when absent
        model = AutoModel.from_pretrained(source, torch_dtype=torch.float32, trust_remote_code=True).eval()
        if mode == "image":
            return lambda pixel_values: model.encode_image(pixel_values, mode="InternVL-C")
        return lambda input_ids: model.encode_text(input_ids)
    return build
