"""The whole command on random-weight checkpoints in the upstream layouts, then the product on the result.

One export run (setUpModule) of every part from the fake upstream tree (support.UpstreamTree:
ImageBind and InternVL reduced, projectors and CLAP at full size). The tests then read
export.json and the files, and run the product's own `spaces validate --all` and `embed` on the
sample media (plus a 30 s clip, so that CLAP-General's fusion path runs), against our PyTorch modules.
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
from record import sha256_path  # noqa: E402

ROOT = os.path.join(support.WORK, "model-root")
TREE = support.UpstreamTree(os.path.join(support.WORK, "upstream"))
RESULT = None
SPACES = ["imagebind", "imagebind++", "internvl-ib", "internvl-ib++", "internvl-ib-ft", "internvl-ib-ft++"]


def setUpModule():
    global RESULT
    support.require_environment()
    TREE.ensure()
    shutil.rmtree(ROOT, ignore_errors=True)
    RESULT = support.run_export(*TREE.arguments(), "--out", ROOT, "--media", support.MEDIA)


def record() -> dict:
    with open(os.path.join(ROOT, "export.json"), encoding="utf-8") as f:
        return json.load(f)


class Export(unittest.TestCase):
    def test_the_command_succeeds_and_every_space_validates(self):
        self.assertEqual(RESULT.returncode, 0, RESULT.stdout + RESULT.stderr)
        self.assertNotIn("skip:", RESULT.stdout)
        for space in SPACES:
            self.assertIn(f"ok    {space}  sha256:", RESULT.stdout)
        p = support.freebind("spaces", "validate", "--all", "--models", ROOT)  # the product, on its own
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(sorted(l.split()[1] for l in p.stdout.splitlines() if l.startswith("ok ")), sorted(SPACES))

    def test_every_manifest_file_is_written_checked_and_recorded(self):
        m = support.manifests()
        files = {f for p in m.parts.values() for f in p.files}
        r = record()
        self.assertEqual(set(r["files"]), files)
        for rel in files:
            e = r["files"][rel]
            self.assertEqual(e["sha256"], sha256_path(os.path.join(ROOT, rel)), rel)
            c = e["checks"]
            for k in ("random_max_abs", "batch1_vs_batchN_max_abs", "real_max_abs"):
                self.assertLessEqual(c[k], checks.TOLERANCE, f"{rel} {k}")
            if not rel.startswith("encoders/"):
                # projectors: beside random unit vectors, their source expert's atoms of the sample media
                # and captions, through the encoder files exported before them
                source = next(e.source for p in m.parts.values() for f, e in p.files.items() if f == rel)
                rows = {"imagebind": 3 + 3 + 4, "imagebind-audio-ft": 3, "clap-general": 3 + 4, "clap-music": 3 + 4}[source]
                self.assertEqual(c["real_rows"], rows, rel)
                self.assertTrue(e["real_inputs"].startswith("n(atoms) of the sample media and captions through "
                                                            f"encoders/{source}/"), rel)
        tokenizers = {t for p in m.parts.values() for t in p.tokenizers}
        self.assertEqual(set(r["tokenizers"]), tokenizers)
        for tok in tokenizers:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, tok)))

    def test_sources_and_versions_are_recorded(self):
        r = record()
        self.assertEqual(r["sources"]["--imagebind"]["sha256"], sha256_path(TREE.imagebind))
        self.assertEqual(r["sources"]["--freebind"]["sha256"], sha256_path(TREE.freebind))
        self.assertEqual(r["libraries"]["torch"], torch.__version__)
        self.assertEqual(r["libraries"]["onnx"], onnx.__version__)
        self.assertEqual(r["libraries"]["opset"], 17)
        # the product build that ran the checks, and its ONNX Runtime
        by = r["checked_by"]
        self.assertEqual(by["command"], ["dotnet", support.DLL])
        self.assertEqual(by["dll_sha256"], sha256_path(support.DLL))
        self.assertEqual(by["execution_provider"], "CPU")
        self.assertTrue(by["onnxruntime"] and all(v.startswith("Microsoft.ML.OnnxRuntime") and v.split()[1][0].isdigit()
                                                  for v in by["onnxruntime"]), by["onnxruntime"])
        self.assertEqual(r["sources"]["--internvl"]["sha256"], sha256_path(TREE.internvl))
        self.assertTrue(r["validate"]["ok"])
        self.assertEqual(r["validate"]["spaces"], sorted(SPACES))

    def test_files_meet_the_documented_contract(self):
        # docs/export.md's table, restated here.
        want = {"encoders/imagebind/vision.onnx": ([("pixel_values", 1, [3, 224, 224])], 1024),
                "encoders/imagebind/audio.onnx": ([("fbank", 1, [1, 128, 204])], 1024),
                "encoders/imagebind/text.onnx": ([("input_ids", 7, [77])], 1024),
                "encoders/imagebind-audio-ft/audio.onnx": ([("fbank", 1, [1, 128, 204])], 1024),
                "IB_PP_M_Proj/AV/best.onnx": ([("input", 1, [512])], 1024),
                "InternVL_IB_Proj/mix/best.onnx": ([("input", 1, [1024])], 768),
                "InternVL_IB_FT_Audio_Head/TV/best.onnx": ([("input", 1, [1024])], 768),
                "encoders/clap-general/audio.onnx": ([("mel_fusion", 1, [4, 1001, 64])], 512),
                "encoders/clap-music/audio.onnx": ([("waveform", 1, [480000])], 512),
                "encoders/clap-music/text.onnx": ([("input_ids", 7, [77]), ("attention_mask", 7, [77])], 512),
                "encoders/internvl-c/vision.onnx": ([("pixel_values", 1, [3, 224, 224])], 768),
                "encoders/internvl-c/text.onnx": ([("input_ids", 7, [80])], 768)}
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
        """`freebind embed` on the samples with the exported files: every atom equals our PyTorch module
        on the product's own preprocessing (ImageBind audio: its 3 clip rows averaged)."""
        long_clip = os.path.join(support.WORK, "long-30s.wav")
        support.concatenate_wavs([os.path.join(support.MEDIA, f) for f in ("BBQ.wav", "toilet.wav", "train.wav")], long_clip)
        images = [os.path.join(support.MEDIA, f) for f in ("BBQ.jpeg", "train.jpeg")]
        audios = [os.path.join(support.MEDIA, "toilet.wav"), long_clip]
        texts = ["an audio of barbeque"]
        modules = Modules()
        # the experts each space runs per modality (spaces/*.json, restated): every one must give an atom
        experts = {"imagebind++": {"image": {"imagebind"}, "audio": {"imagebind", "clap-general", "clap-music"},
                                   "text": {"imagebind", "clap-general", "clap-music"}},
                   "internvl-ib-ft++": {"image": {"imagebind", "internvl-c"},
                                        "audio": {"imagebind-audio-ft", "clap-general", "clap-music"},
                                        "text": {"imagebind", "internvl-c", "clap-general", "clap-music"}},
                   "internvl-ib": {"image": {"imagebind", "internvl-c"}, "audio": {"imagebind"},
                                   "text": {"imagebind", "internvl-c"}}}
        for space in experts:
            out = os.path.join(support.WORK, f"embed-{space}.jsonl")
            p = support.freebind("embed", "--space", space, "--models", ROOT, *sum((["--image", i] for i in images), []),
                                 *sum((["--audio", a] for a in audios), []), *sum((["--text", x] for x in texts), []),
                                 "--output", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
            items = [("image", i) for i in images] + [("audio", a) for a in audios] + [("text", x) for x in texts]
            self.assertEqual(len(rows), len(items))
            for row, (modality, item) in zip(rows, items):
                self.assertEqual(row["modality"], modality)
                self.assertEqual(set(row["experts"]), experts[space][modality], f"{space} {row['id']}")
                for expert, atom in row["experts"].items():
                    want = modules.atom(expert, modality, item)
                    diff = float(np.max(np.abs(np.array(atom, dtype=np.float32) - want)))
                    self.assertLessEqual(diff, 1e-4, f"{space} {row['id']} {expert}")


class Modules:
    """Our PyTorch encoders (from the same checkpoints) and the product's preprocessing of an item."""

    def __init__(self):
        self.m = support.manifests()
        self.by_file = {}
        self.cache = {}

    def _module(self, rel: str):
        if rel not in self.by_file:
            from models import clap, internvl
            part = next(p for p in self.m.parts.values() if rel in p.files)
            stream = {"imagebind": lambda: imagebind.exports(TREE.imagebind),
                      "imagebind-audio-ft": lambda: imagebind.finetuned_audio_exports(TREE.finetuned, []),
                      "clap-general": lambda: clap.exports(TREE.clap_general, variant="general"),
                      "clap-music": lambda: clap.exports(TREE.clap_music, variant="music"),
                      "internvl-c": lambda: internvl.exports(TREE.internvl)}[part.name]()
            for exp in stream:
                if exp.file == rel:
                    self.by_file[rel] = (exp.module, part)
                    break
        return self.by_file[rel]

    def atom(self, expert: str, modality: str, item: str) -> np.ndarray:
        key = (expert, modality, item)
        if key not in self.cache:
            e = next(e for p in self.m.parts.values() for e in p.files.values() if e.expert == expert and
                     checks.PROFILE_MODALITY[e.profile] == modality)
            module, part = self._module(e.file)
            toks = [os.path.join(ROOT, t) for t in part.tokenizer_profiles.get(e.profile, [])]
            npy = os.path.join(support.WORK, "item.npy")
            q = support.freebind("preprocess", "--profile", e.profile, "--output", npy,
                                 *sum((["--tokenizer", t] for t in toks), []), "--", item)
            assert q.returncode == 0, q.stderr
            names = [i.name for i in checks.PROFILE_INPUTS[e.profile]]
            arrays = [np.load(npy)] + [np.load(npy[:-4] + f".{n}.npy") for n in names[1:]]
            self.cache[key] = checks.torch_forward(module, arrays).mean(0)
        return self.cache[key]


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
        with Product(None, os.path.join(support.REPO, "spaces")) as product, \
                self.assertRaisesRegex(checks.CheckFailed, r"batch1_vs_batchN_max_abs .* \(the graph depends on the export batch size\)"):
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
        with Product(None, os.path.join(support.REPO, "spaces")) as product:
            figures = checks.compare(path, exp, product, seed=0, real=None)
        self.assertLessEqual(figures["random_max_abs"], checks.TOLERANCE)
        onnx_files.write(exp, root, batch=2, seed=0)  # inline again: the stale data file goes
        self.assertFalse(os.path.exists(path + ".data"))


if __name__ == "__main__":
    unittest.main()
