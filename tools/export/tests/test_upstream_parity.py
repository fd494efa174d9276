"""Parity with upstream's own code, in the suite, without upstream code: our PyTorch modules and the
exported ONNX files (run by the product's ONNX Runtime) against the outputs upstream's models gave
on the same seeded reduced checkpoints and inputs (fixtures/upstream/, written by
tests/make_upstream_fixtures.py from the upstream checkouts; the commits are in upstream.json).

Covered: ImageBind vision, audio, text; FreeBind's fine-tuned audio trunk and a head projector;
CLAP-General audio (random short and long rows, and the product's tensor of a 30 s clip: the fusion
branch) and text; CLAP-Music audio (its STFT/mel front end in the graph) and text; InternVL-C
vision and text. Real inputs (the product's preprocessing of a sample image, wav, the 30 s clip
and three captions) are stored in the fixtures, so a change of the preprocessing does not move them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

import numpy as np

from tests import support
from tests import upstream_cases as U

import checks  # noqa: E402
import onnx_files  # noqa: E402
from product import Product  # noqa: E402

# Measured when the fixtures were made (upstream.json, "measured"): our modules against upstream,
# max abs on unit vectors, 0 (ImageBind, FreeBind, InternVL-C: bit-identical) to 8.8e-7
# (CLAP-General audio, HTSAT's fusion branch summed in another order). ONNX Runtime against PyTorch
# adds up to ~1e-6 of the output scale (docs/export.md). The bounds leave a margin of about 5x on
# the worst measured figure and are relative to the output scale (InternVL-C and ImageBind
# audio/text outputs are not unit vectors); a wrong layer, mask or order of heads moves them by 1e-3
# or more.
TORCH_TOLERANCE = 5e-6
ONNX_TOLERANCE = 1e-5
REGENERATE = ("regenerate the fixtures with tools/export/tests/make_upstream_fixtures.py "
              "(docs/export.md, 'Parity with upstream')")

PRODUCT: Product | None = None
TMP: str | None = None


def setUpModule():
    global PRODUCT, TMP
    support.require_environment()
    PRODUCT = Product(None, os.path.join(support.REPO, "spaces"))
    TMP = tempfile.mkdtemp(prefix="upstream-parity-")


def tearDownModule():
    PRODUCT.close()
    shutil.rmtree(TMP, ignore_errors=True)


class UpstreamParity(unittest.TestCase):
    index: dict
    states: dict

    @classmethod
    def setUpClass(cls):
        cls.index = U.read_index()["cases"]
        cls.states = {}

    def state(self, checkpoint: str) -> dict:
        if checkpoint not in self.states:  # a few hundred MB in all: each is built once
            self.states[checkpoint] = U.CHECKPOINTS[checkpoint]()
        return self.states[checkpoint]

    def check(self, name: str) -> None:
        case = next(c for c in U.CASES if c.name == name)
        record = self.index[name]
        state = self.state(case.checkpoint)
        self.assertEqual(U.digest(state), record["checkpoint_sha256"],
                         f"the {case.checkpoint} random checkpoint writer changed: {REGENERATE}")
        exp = U.our_export(case, state)
        rand = U.random_inputs(case, exp)
        self.assertEqual(U.digest(rand), record["random_inputs_sha256"], f"{exp.file}'s random inputs changed: {REGENERATE}")
        with np.load(U.fixture_path(case)) as f:
            fixture = dict(f)
        feeds = {"random": rand}
        if case.real is not None:
            feeds["real"] = [fixture[f"real_in_{i.name}"] for i in exp.inputs]
        bound = max(1.0, record["output_scale"])
        onnx_file = os.path.join(TMP, case.name, exp.file)
        onnx_files.write(exp, os.path.join(TMP, case.name), batch=2, seed=0)
        try:
            names = [i.name for i in exp.inputs]
            outputs, _ = PRODUCT.run_onnx(onnx_file, [list(zip(names, arrays)) for arrays in feeds.values()])
        finally:
            shutil.rmtree(os.path.join(TMP, case.name), ignore_errors=True)
        for (label, arrays), onnx_out in zip(feeds.items(), outputs):
            theirs = fixture[f"{label}_out"]
            ours = checks.torch_forward(exp.module, arrays)
            torch_diff = checks.max_abs(ours, theirs, f"{name} {label}: PyTorch vs upstream")
            onnx_diff = checks.max_abs(onnx_out, theirs, f"{name} {label}: ONNX vs upstream")
            self.assertLessEqual(torch_diff, TORCH_TOLERANCE * bound, f"{name} {label}: our PyTorch module vs upstream")
            self.assertLessEqual(onnx_diff, ONNX_TOLERANCE * bound, f"{name} {label}: the ONNX file vs upstream")
            print(f"\n  {name} {label}: max |ours - upstream| PyTorch {torch_diff:.1e}, ONNX {onnx_diff:.1e} "
                  f"(scale {record['output_scale']:.3g})", end="")

    def test_the_fixtures_cover_every_case_and_name_their_upstream(self):
        self.assertEqual(sorted(self.index), sorted(c.name for c in U.CASES))
        for name, record in self.index.items():
            self.assertTrue(record["upstream"], name)
            self.assertTrue(all(len(c.split("+")[0]) == 40 for c in record["upstream"].values()), name)

    def test_imagebind_vision(self):
        self.check("imagebind-vision")

    def test_imagebind_audio(self):
        self.check("imagebind-audio")

    def test_imagebind_text(self):
        self.check("imagebind-text")

    def test_imagebind_finetuned_audio_trunk(self):
        self.check("imagebind-audio-ft")

    def test_imagebind_finetuned_audio_head_projector(self):
        self.check("imagebind-audio-ft-head-mix")

    def test_clap_general_audio_short_and_long_clips(self):
        self.check("clap-general-audio")

    def test_clap_general_text(self):
        self.check("clap-general-text")

    def test_clap_music_audio(self):
        self.check("clap-music-audio")

    def test_clap_music_text(self):
        self.check("clap-music-text")

    def test_internvl_c_vision(self):
        self.check("internvl-c-vision")

    def test_internvl_c_text(self):
        self.check("internvl-c-text")


if __name__ == "__main__":
    unittest.main()
