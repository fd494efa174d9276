"""The whole command on random-weight checkpoints in the upstream layouts, then the product on the result.

One export run (setUpModule) of every part whose upstream module and test checkpoint exist here:
ImageBind reduced in width and depth, the fine-tuned audio file (reduced trunk, full-size head), all
FreeBind projector sets at full size. The tests then read export.json, the files, and run the
product's own `spaces validate` and `embed` on the sample media.
"""

from __future__ import annotations

import json
import os
import shutil
import unittest

import numpy as np
import onnx
import torch

from tests import support

import checkpoints as C  # noqa: E402
import checks  # noqa: E402
from models import imagebind  # noqa: E402

ROOT = os.path.join(support.WORK, "model-root")
TREE = support.UpstreamTree()
RESULT = None
PARTS = ("imagebind", "imagebind-audio-ft", "projectors")


def setUpModule():
    global RESULT
    support.require_environment()
    TREE.ensure()
    shutil.rmtree(ROOT, ignore_errors=True)
    RESULT = support.run_export("--imagebind", TREE.imagebind, "--freebind", TREE.freebind,
                                "--clip-bpe", support.CLIP_BPE, "--out", ROOT, "--media", support.MEDIA)


def record() -> dict:
    with open(os.path.join(ROOT, "export.json"), encoding="utf-8") as f:
        return json.load(f)


class Export(unittest.TestCase):
    def test_the_command_succeeds_and_names_what_it_left_out(self):
        self.assertEqual(RESULT.returncode, 0, RESULT.stdout + RESULT.stderr)
        out = RESULT.stdout
        self.assertIn("skip: [clap-general] --clap-general, --roberta not given", out)
        self.assertRegex(out, r"\[internvl-c\] --internvl not given: skipping \d+ files; spaces left out: "
                              r"internvl-ib, internvl-ib\+\+, internvl-ib-ft, internvl-ib-ft\+\+")
        self.assertIn("ok    imagebind  sha256:", out)

    def test_every_file_of_the_parts_is_written_checked_and_recorded(self):
        m = support.manifests()
        files = {f for p in PARTS for f in m.parts[p].files}
        r = record()
        self.assertEqual(set(r["files"]), files)
        for rel in files:
            e = r["files"][rel]
            path = os.path.join(ROOT, rel)
            self.assertEqual(e["sha256"], __import__("export").sha256_path(path), rel)
            c = e["checks"]
            for k in ("random_max_abs", "batch1_vs_batchN_max_abs") + (("real_max_abs",) if rel.startswith("encoders/") else ()):
                self.assertLessEqual(c[k], checks.TOLERANCE, f"{rel} {k}")
        for tok in m.parts["imagebind"].tokenizers:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, tok)))
            self.assertIn(tok, r["tokenizers"])

    def test_sources_and_versions_are_recorded(self):
        r = record()
        import export
        self.assertEqual(r["sources"]["--imagebind"]["sha256"], export.sha256_path(TREE.imagebind))
        self.assertEqual(r["sources"]["--freebind"]["sha256"], export.sha256_path(TREE.freebind))
        self.assertEqual(r["libraries"]["torch"], torch.__version__)
        self.assertEqual(r["libraries"]["onnx"], onnx.__version__)
        self.assertEqual(r["libraries"]["opset"], 17)
        self.assertTrue(r["validate"]["ok"])
        self.assertEqual(r["validate"]["spaces"], ["imagebind"])

    def test_files_meet_the_documented_contract(self):
        # docs/export.md's table, restated here.
        want = {"encoders/imagebind/vision.onnx": ([("pixel_values", 1, [3, 224, 224])], 1024),
                "encoders/imagebind/audio.onnx": ([("fbank", 1, [1, 128, 204])], 1024),
                "encoders/imagebind/text.onnx": ([("input_ids", 7, [77])], 1024),
                "encoders/imagebind-audio-ft/audio.onnx": ([("fbank", 1, [1, 128, 204])], 1024),
                "IB_PP_M_Proj/AV/best.onnx": ([("input", 1, [512])], 1024),
                "InternVL_IB_Proj/mix/best.onnx": ([("input", 1, [1024])], 768),
                "InternVL_IB_FT_Audio_Head/TV/best.onnx": ([("input", 1, [1024])], 768)}
        for rel, (inputs, width) in want.items():
            m = onnx.load(os.path.join(ROOT, rel))
            self.assertEqual(m.opset_import[0].version, 17)
            got = [(i.name, i.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
                   for i in m.graph.input]
            self.assertEqual(got, [(n, t, ["batch"] + s) for n, t, s in inputs], rel)
            self.assertEqual(len(m.graph.output), 1)
            out = m.graph.output[0]
            self.assertEqual([d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim], ["batch", width], rel)

    def test_embed_through_the_product_equals_pytorch(self):
        """`freebind embed` on the sample media with the exported files gives PyTorch's atoms."""
        out = os.path.join(support.WORK, "embed.jsonl")
        images = [os.path.join(support.MEDIA, f) for f in ("BBQ.jpeg", "toilet.jpeg", "train.jpeg")]
        audios = [os.path.join(support.MEDIA, f) for f in ("BBQ.wav", "train.wav")]
        text = "an audio of barbeque"
        p = support.freebind("embed", "--space", "imagebind", "--models", ROOT, *sum((["--image", i] for i in images), []),
                             *sum((["--audio", a] for a in audios), []), "--text", text, "--output", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), 6)
        state = C.open_state(TREE.imagebind)
        modules = {m: imagebind.build(state, m, "test") for m in ("vision", "audio", "text")}
        tok = os.path.join(ROOT, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz")
        items = [("vision", "imagebind-vision", i, []) for i in images] + \
                [("audio", "imagebind-audio", a, []) for a in audios] + [("text", "imagebind-text", text, [tok])]
        for row, (modality, profile, item, toks) in zip(rows, items):
            npy = os.path.join(support.WORK, "item.npy")
            q = support.freebind("preprocess", "--profile", profile, "--output", npy, *(["--tokenizer", *toks] if toks else []), "--", item)
            self.assertEqual(q.returncode, 0, q.stderr)
            with torch.no_grad():
                want = modules[modality](torch.from_numpy(np.load(npy))).mean(0).numpy()  # audio: 3 clips averaged
            atom = np.array(row["experts"]["imagebind"], dtype=np.float32)
            self.assertLessEqual(float(np.max(np.abs(atom - want))), 1e-4, f"{row['id']}")
            # and the vector is the normalised atom (the imagebind space has no bonds)
            np.testing.assert_allclose(row["vector"], want / np.linalg.norm(want), atol=1e-5)


class Checks(unittest.TestCase):
    """The checks catch what they are there for."""

    def test_a_graph_that_baked_in_the_export_batch_is_refused(self):
        class Baked(torch.nn.Module):
            # Like HTSAT's window_reverse: a Python int of the batch size becomes a constant in the trace.
            def forward(self, x):
                b = int(x.shape[0])
                return x.reshape(b, -1).flip(1).reshape(-1, 8) * 2.0

        from contract import Export as E, FLOAT32, Input, random_floats
        import onnx_files
        from product import Product
        exp = E(file="encoders/test/baked.onnx", module=Baked(), inputs=(Input("x", FLOAT32, (8,)),), width=8,
                random_inputs=lambda rng, rows: [random_floats(rng, rows, (8,))], profile="test")
        root = os.path.join(support.WORK, "baked")
        onnx_files.write(exp, root, batch=2, seed=0)
        product = Product(None, os.path.join(support.REPO, "spaces"))
        with self.assertRaisesRegex(checks.CheckFailed, r"batch1_vs_batchN_max_abs .* \(the graph depends on the export batch size\)"):
            checks.compare(os.path.join(root, exp.file), exp, product, seed=0, real=None)

    def test_weights_over_the_inline_limit_go_to_external_data_that_the_runtime_reads(self):
        import onnx_files
        from models import projector
        from product import Product
        state = C.open_state(os.path.join(TREE.freebind, "IB_PP_G_Proj", "mix", "best.pt"))
        exp = next(iter([projector._export(projector.load(state, "p"), "IB_PP_G_Proj/mix/best.onnx", "x")]))
        root = os.path.join(support.WORK, "external")
        limit = onnx_files.INLINE_LIMIT
        onnx_files.INLINE_LIMIT = 1 << 20
        try:
            facts = onnx_files.write(exp, root, batch=2, seed=0)
        finally:
            onnx_files.INLINE_LIMIT = limit
        path = os.path.join(root, exp.file)
        self.assertEqual(facts["external_data"], "best.onnx.data")
        self.assertLess(os.path.getsize(path), 1 << 20)
        self.assertGreater(os.path.getsize(path + ".data"), 10 << 20)
        figures = checks.compare(path, exp, Product(None, os.path.join(support.REPO, "spaces")), seed=0, real=None)
        self.assertLessEqual(figures["random_max_abs"], checks.TOLERANCE)
        onnx_files.write(exp, root, batch=2, seed=0)  # inline again: the stale data file goes
        self.assertFalse(os.path.exists(path + ".data"))


if __name__ == "__main__":
    unittest.main()
