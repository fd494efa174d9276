"""`--fp16` end to end: the command writes float16 encoders whose figures against float32 are in
export.json, the product validates the root and embeds with it; and the float16 gates refuse a file
that float16 breaks (infinity where float32 is finite; a direction float16 cannot hold).

ImageBind only (reduced: the `imagebind` space needs nothing else), so that the module stays short.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import types
import unittest

import numpy as np
import onnx
import torch

from tests import support

import checks  # noqa: E402
import export  # noqa: E402
import onnx_files  # noqa: E402
from contract import FLOAT32, Export, Input, random_floats  # noqa: E402
from models import imagebind  # noqa: E402
from product import Product  # noqa: E402
from tests.random_upstream import random_state  # noqa: E402

DIMS = {"vision": (80, 1), "text": (64, 1), "audio": (64, 1)}
FILES = ["encoders/imagebind/vision.onnx", "encoders/imagebind/audio.onnx", "encoders/imagebind/text.onnx"]
TMP = ROOT = CHECKPOINT = RESULT = None


def setUpModule():
    global TMP, ROOT, CHECKPOINT, RESULT
    support.require_environment()
    TMP = tempfile.mkdtemp(prefix="export-fp16-")
    ROOT = os.path.join(TMP, "root")
    CHECKPOINT = os.path.join(TMP, "imagebind_huge.pth")
    torch.save(random_state(np.random.default_rng(41), **DIMS), CHECKPOINT)
    RESULT = support.run_export("--imagebind", CHECKPOINT, "--clip-bpe", support.CLIP_BPE, "--out", ROOT,
                                "--only", "imagebind", "--media", support.MEDIA, "--fp16")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


class Fp16Export(unittest.TestCase):
    def test_the_command_writes_float16_files_and_records_their_error(self):
        self.assertEqual(RESULT.returncode, 0, RESULT.stdout + RESULT.stderr)
        with open(os.path.join(ROOT, "export.json"), encoding="utf-8") as f:
            files = json.load(f)["files"]
        self.assertEqual(sorted(files), sorted(FILES))
        for rel in FILES:
            e = files[rel]
            f16 = e["fp16"]
            labels = ["random", "real"] + ([] if rel.endswith("text.onnx") else ["zeros"])  # no all-zero token ids
            self.assertEqual(sorted(k for k in f16 if k.endswith("_max_abs_vs_fp32")),
                             sorted(f"{l}_max_abs_vs_fp32" for l in labels), rel)
            for label in labels:
                self.assertGreaterEqual(f16[f"{label}_min_cosine_vs_fp32"], checks.FP16_MIN_COSINE, f"{rel} {label}")
                self.assertLess(f16[f"{label}_max_abs_vs_fp32"], 0.05 * max(1.0, e["checks"]["output_scale"]), rel)
            # the float32 file passed the checks first; the file on disk is its float16 conversion
            self.assertLessEqual(e["checks"]["random_max_abs"], checks.TOLERANCE, rel)
            self.assertEqual(f16["bytes"], os.path.getsize(os.path.join(ROOT, rel)))
            self.assertLess(f16["bytes"], 0.6 * e["bytes"], rel)
            model = onnx.load(os.path.join(ROOT, rel))
            types_ = {t.data_type for t in model.graph.initializer if len(t.dims) >= 2}
            self.assertEqual(types_, {onnx.TensorProto.FLOAT16}, rel)
            self.assertEqual([i.type.tensor_type.elem_type for i in model.graph.output], [onnx.TensorProto.FLOAT], rel)

    def test_the_product_validates_the_root_and_embeds_with_it(self):
        self.assertEqual(RESULT.returncode, 0, RESULT.stdout + RESULT.stderr)
        p = support.freebind("spaces", "validate", "--space", "imagebind", "--models", ROOT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = os.path.join(TMP, "embed.jsonl")
        image, audio, text = os.path.join(support.MEDIA, "BBQ.jpeg"), os.path.join(support.MEDIA, "train.wav"), "a train"
        p = support.freebind("embed", "--space", "imagebind", "--models", ROOT, "--image", image, "--audio", audio,
                             "--text", text, "--output", out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(out, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual([r["modality"] for r in rows], ["image", "audio", "text"])
        # each float16 atom points where our float32 PyTorch module's does (the product's preprocessing)
        modules = {e.file: e.module for e in imagebind.exports(CHECKPOINT)}
        profiles = {"image": ("imagebind-vision", FILES[0], image), "audio": ("imagebind-audio", FILES[1], audio),
                    "text": ("imagebind-text", FILES[2], text)}
        for row in rows:
            self.assertEqual(set(row["experts"]), {"imagebind"})
            profile, rel, item = profiles[row["modality"]]
            npy = os.path.join(TMP, "item.npy")
            toks = ["--tokenizer", os.path.join(ROOT, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz")] if row["modality"] == "text" else []
            q = support.freebind("preprocess", "--profile", profile, "--output", npy, *toks, "--", item)
            self.assertEqual(q.returncode, 0, q.stderr)
            want = checks.torch_forward(modules[rel], [np.load(npy)]).mean(0, keepdims=True)
            got = np.array(row["experts"]["imagebind"], dtype=np.float32)[None]
            self.assertGreaterEqual(checks.min_cosine(got, want), checks.FP16_MIN_COSINE, row["modality"])


class Fp16Gates(unittest.TestCase):
    """The gates refuse a float16 file that float16 breaks; the message says what to do."""

    @classmethod
    def setUpClass(cls):
        support.require_environment()
        cls.product = Product(None, os.path.join(support.REPO, "spaces"))
        cls.dir = tempfile.mkdtemp(prefix="export-fp16-gates-")

    @classmethod
    def tearDownClass(cls):
        cls.product.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def to_fp16(self, module: torch.nn.Module, name: str):
        exp = Export(file=f"encoders/test/{name}.onnx", module=module, inputs=(Input("x", FLOAT32, (8,)),), width=8,
                     random_inputs=lambda rng, rows: [random_floats(rng, rows, (8,))], profile="test")
        onnx_files.write(exp, self.dir, batch=2, seed=0)
        run = export.Run(types.SimpleNamespace(out=self.dir, seed=0), None, self.product, None)
        return run.to_fp16(exp, os.path.join(self.dir, exp.file), real=None)

    def test_nan_or_infinity_where_float32_is_finite_is_refused(self):
        class Floor(torch.nn.Module):
            def forward(self, x):
                return torch.log(x * x + 1e-10)  # 1e-10 is 0 in float16: log(0) on the all-zero input

        with self.assertRaisesRegex(checks.CheckFailed, r"floor\.onnx: the float16 file gives NaN or infinity on the "
                                                        r"zeros inputs where float32 does not; export without --fp16$"):
            self.to_fp16(Floor(), "floor")

    def test_a_constant_beyond_float16_is_refused(self):
        class Large(torch.nn.Module):
            def forward(self, x):
                return x * 1e5

        with self.assertRaisesRegex(checks.CheckFailed, r"large\.onnx: cannot be converted to float16: .* holds 1e\+05, "
                                                        r"beyond float16's range \(65504\); export without --fp16$"):
            self.to_fp16(Large(), "large")

    def test_a_direction_float16_cannot_hold_is_refused(self):
        class Cancel(torch.nn.Module):
            def forward(self, x):
                return (x + 1000.0) - 1000.0  # float16 steps are 0.5 near 1000

        with self.assertRaisesRegex(checks.CheckFailed, r"cancel\.onnx: the float16 conversion drifts from float32 "
                                                        r"\(cosine 0\.\d+ < 0\.999\); export without --fp16$"):
            self.to_fp16(Cancel(), "cancel")

    def test_a_benign_module_passes(self):
        figures = self.to_fp16(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh()), "benign")
        self.assertGreaterEqual(figures["random_min_cosine_vs_fp32"], 0.9999)


if __name__ == "__main__":
    unittest.main()
