"""InternVL-C (InternVL-14B-224px): the Hugging Face folder, exact keys, config against weights,
ONNX through the product's runtime, batch 1 vs N.

The full-size layout (13.8 B parameters) is checked as `meta` tensors from a fixture dumped from
upstream's own InternVLModel; everything that runs numbers uses a reduced random folder in the same
layout (bfloat16 safetensors shards with an index, as upstream publishes).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import unittest

import numpy as np

from tests import support

import checkpoints as C  # noqa: E402
import checks  # noqa: E402
import onnx_files  # noqa: E402
from models import internvl, random_checkpoints as RC  # noqa: E402
from product import Product  # noqa: E402

WORK = os.path.join(support.WORK, "internvl")
FOLDER = os.path.join(WORK, "InternVL-14B-224px-reduced")


def fixture() -> dict:
    with open(os.path.join(support.FIXTURES, "InternVL-14B-224px.json"), encoding="utf-8") as f:
        return json.load(f)


def load_meta(layout: dict, config: dict) -> list:
    return list(internvl.exports(C.meta_state(layout, "InternVL-14B-224px"), config=config))


def fold(keys) -> set[str]:
    return {re.sub(r"\.layers\.\d+\.", ".layers.#.", k) for k in keys}


def setUpModule():
    shutil.rmtree(FOLDER, ignore_errors=True)
    RC.write_internvl(FOLDER, np.random.default_rng(7))


class Layout(unittest.TestCase):
    def test_internvl_14b_loads_at_full_size(self):
        f = fixture()
        vision, text = load_meta(f["keys"], f["config"])
        self.assertEqual((vision.file, vision.width, vision.profile), ("encoders/internvl-c/vision.onnx", 768, "internvl-vision"))
        self.assertEqual(vision.facts["vision"], {"layers": 48, "width": 3200, "heads": 25, "qk_normalization": True,
                                                  "qkv_bias": False})
        self.assertEqual((text.file, text.width, text.profile), ("encoders/internvl-c/text.onnx", 768, "internvl-text"))
        self.assertEqual(text.facts["text"], {"layers": 32, "width": 4096, "heads": 32, "vocab": 49954})
        self.assertEqual([(i.name, i.shape) for i in text.inputs], [("input_ids", (80,))])
        self.assertTrue(all(p.is_meta for e in (vision, text) for p in e.module.parameters()))

    def test_the_random_folder_has_the_upstream_layout(self):
        state = C.open_state(FOLDER)
        self.assertEqual(fold(state), fold(fixture()["keys"]))
        self.assertEqual({str(state[k].dtype) for k in state if k != "logit_scale"}, {"torch.bfloat16"})
        with open(os.path.join(FOLDER, "model.safetensors.index.json"), encoding="utf-8") as f:
            self.assertEqual(len(set(json.load(f)["weight_map"].values())), 2)


class ExactKeys(unittest.TestCase):
    def test_missing_key_is_named(self):
        f = fixture()
        del f["keys"]["vision_model.encoder.layers.31.attn.k_norm.weight"]
        with self.assertRaisesRegex(C.CheckpointError, r"missing vision_model\.encoder\.layers\.31\.attn\.k_norm\.weight"):
            load_meta(f["keys"], f["config"])
        f = fixture()
        del f["keys"]["text_projection"]
        with self.assertRaisesRegex(C.CheckpointError, r"has no 'text_projection'"):
            load_meta(f["keys"], f["config"])

    def test_unexpected_key_is_named(self):
        f = fixture()
        f["keys"]["qllama.model.layers.5.self_attn.q_norm.weight"] = [4096]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected qllama\.model\.layers\.5\.self_attn\.q_norm\.weight"):
            load_meta(f["keys"], f["config"])
        f = fixture()
        f["keys"]["vision_model.encoder.layers.0.attn.qkv.lora_A.weight"] = [16, 3200]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected vision_model\.encoder\.layers\.0\.attn\.qkv\.lora_A\.weight"):
            load_meta(f["keys"], f["config"])

    def test_misshaped_key_is_named(self):
        f = fixture()
        f["keys"]["clip_projector.norm1_k.weight"] = [3072]
        with self.assertRaisesRegex(C.CheckpointError, r"clip_projector\.norm1_k\.weight is \[3072\], expected \[3200\]"):
            load_meta(f["keys"], f["config"])

    def test_unused_parts_are_tolerated_by_name(self):
        f = fixture()
        unused = [k for k in f["keys"] if k.startswith(("clip_projector2.", "itm_head.", "qllama.lm_head."))
                  or (k.startswith("qllama.") and ".cross_attn." in k) or k in ("query_tokens", "logit_scale")]
        # clip_projector2 (14), itm_head (2), lm_head (1), cross-attention in every second layer (16 x 6), 2 scalars/tokens
        self.assertEqual(len(unused), 14 + 2 + 1 + 16 * 6 + 2)
        f["keys"]["qllama.model.layers.3.self_attn.rotary_emb.inv_freq"] = [64]  # older transformers saved it
        vision, text = load_meta(f["keys"], f["config"])
        self.assertEqual(set(vision.facts["unused_keys"]), set(internvl.UNUSED))

    def test_config_and_weights_must_agree(self):
        f = fixture()
        config = copy.deepcopy(f["config"])
        config["qllama_config"]["hidden_size"] = 5120
        with self.assertRaisesRegex(C.CheckpointError, r"config\.json says qllama_config\.hidden_size is 5120 but the "
                                                       r"weights have 4096"):
            load_meta(f["keys"], config)
        config = copy.deepcopy(f["config"])
        config["vision_config"]["num_attention_heads"] = 24
        with self.assertRaisesRegex(C.CheckpointError, r"num_attention_heads 24 does not divide the vision width 3200"):
            load_meta(f["keys"], config)

    def test_folder_problems_are_named(self):
        bare = os.path.join(WORK, "no-config")
        shutil.rmtree(bare, ignore_errors=True)
        shutil.copytree(FOLDER, bare)
        os.remove(os.path.join(bare, "config.json"))
        with self.assertRaisesRegex(C.CheckpointError, r"has no config\.json"):
            list(internvl.exports(bare))
        lora = os.path.join(WORK, "lora")
        shutil.rmtree(lora, ignore_errors=True)
        shutil.copytree(FOLDER, lora)
        with open(os.path.join(lora, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        config["use_backbone_lora"] = 16
        with open(os.path.join(lora, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        with self.assertRaisesRegex(C.CheckpointError, r"enables LoRA adapters .* merge them"):
            list(internvl.exports(lora))
        partial = os.path.join(WORK, "partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(FOLDER, partial)
        os.remove(os.path.join(partial, "model-00002-of-00002.safetensors"))
        with self.assertRaisesRegex(C.CheckpointError, r"lacks model-00002-of-00002\.safetensors, which "
                                                       r"model\.safetensors\.index\.json lists"):
            list(internvl.exports(partial))


class Onnx(unittest.TestCase):
    """Opset 17, dynamic batch, the product's ONNX Runtime equal to PyTorch, batch 1 equal to batch N."""

    def test_vision_and_text(self):
        support.require_environment()
        product = Product(None, os.path.join(support.REPO, "spaces"))
        root = os.path.join(WORK, "root")
        shutil.rmtree(root, ignore_errors=True)
        expected = support.manifests().parts["internvl-c"].files
        self.addCleanup(product.close)
        files = []
        for exp in internvl.exports(FOLDER):
            checks.check_declaration(exp, expected[exp.file])
            onnx_files.write(exp, root, batch=2, seed=0)
            path = os.path.join(root, exp.file)
            contract = checks.check_file(path, exp, expected[exp.file])
            self.assertEqual(list(contract["output"].values()), [["batch", 768]])
            figures = checks.compare(path, exp, product, seed=0, real=None)
            # unnormalised outputs: the tolerance is relative to their scale
            scale = max(1.0, figures["output_scale"])
            self.assertLessEqual(figures["random_max_abs"], 1e-5 * scale, exp.file)
            self.assertLessEqual(figures["batch1_vs_batchN_max_abs"], 1e-5 * scale, exp.file)
            files.append(exp.file)
        self.assertEqual(files, ["encoders/internvl-c/vision.onnx", "encoders/internvl-c/text.onnx"])


if __name__ == "__main__":
    unittest.main()
