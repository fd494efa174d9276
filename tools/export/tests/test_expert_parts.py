"""The command on the CLAP and InternVL parts: reduced random checkpoints in the upstream layouts →
export.py → four encoders per CLAP checkpoint pair and InternVL-C, each checked on random inputs and
on the sample media and texts through the product's own preprocessing and tokenizers.
"""

from __future__ import annotations

import json
import os
import shutil
import unittest

import numpy as np

from tests import support

from models import random_checkpoints as RC  # noqa: E402

WORK = os.path.join(support.WORK, "expert-parts")
ROOT = os.path.join(WORK, "model-root")
TESTDATA = os.path.dirname(support.WORK)
ROBERTA = os.path.join(TESTDATA, "tokenizers", "roberta")
SENTENCEPIECE = os.path.join(TESTDATA, "tokenizers", "internvl", "tokenizer.model")
GENERAL = os.path.join(WORK, "630k-fusion-best.pt")
MUSIC = os.path.join(WORK, "music_speech_audioset_epoch_15_esc_89.98.pt")
INTERNVL = os.path.join(WORK, "InternVL-14B-224px")
FILES = [f"encoders/{e}/{m}.onnx" for e, ms in (("clap-general", ("audio", "text")), ("clap-music", ("audio", "text")),
                                                 ("internvl-c", ("vision", "text"))) for m in ms]
RESULT = None


def setUpModule():
    global RESULT
    support.require_environment()
    missing = [p for p in (ROBERTA, SENTENCEPIECE) if not os.path.exists(p)]
    if missing:
        raise RuntimeError(f"missing {missing}: generate the test tokenizers first "
                           f"(tools/reference/make_tokenizers.py --out $FREEBIND_TESTDATA)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    rng = np.random.default_rng(31)
    RC.write_clap(GENERAL, "general", rng, reduced=True)
    RC.write_clap(MUSIC, "music", rng, reduced=True)
    RC.write_internvl(INTERNVL, rng, tokenizer=SENTENCEPIECE)
    RESULT = support.run_export("--clap-general", GENERAL, "--clap-music", MUSIC, "--roberta", ROBERTA,
                                "--internvl", INTERNVL, "--out", ROOT, "--media", support.MEDIA,
                                "--only", "clap-general,clap-music,internvl-c")


def record() -> dict:
    with open(os.path.join(ROOT, "export.json"), encoding="utf-8") as f:
        return json.load(f)


class Command(unittest.TestCase):
    def test_the_parts_export_and_pass_every_check(self):
        self.assertEqual(RESULT.returncode, 0, RESULT.stdout + RESULT.stderr)
        files = record()["files"]
        self.assertEqual(sorted(files), sorted(FILES))
        for rel in FILES:
            c = files[rel]["checks"]
            self.assertEqual((c["random_rows"], c["real_rows"]), (3, 3 if "text" not in rel else 4), rel)
            scale = max(1.0, c["output_scale"])
            for key in ("random_max_abs", "real_max_abs", "batch1_vs_batchN_max_abs"):
                self.assertLessEqual(c[key], 1e-5 * scale, f"{rel} {key}")
            self.assertTrue(os.path.isfile(os.path.join(ROOT, rel)))

    def test_tokenizers_are_copied_from_their_inputs(self):
        tokenizers = record()["tokenizers"]
        self.assertEqual(sorted(tokenizers), ["tokenizers/internvl/tokenizer.model", "tokenizers/roberta/merges.txt",
                                              "tokenizers/roberta/vocab.json"])
        with open(SENTENCEPIECE, "rb") as a, open(os.path.join(ROOT, "tokenizers/internvl/tokenizer.model"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_the_record_says_what_each_module_chose(self):
        files = record()["files"]
        general = files["encoders/clap-general/audio.onnx"]["facts"]
        self.assertTrue(general["htsat"]["fusion"])
        self.assertIn("longer = any of channels 1-3 differs from channel 0", general["long_clips"])
        self.assertIn("front_end", files["encoders/clap-music/audio.onnx"]["facts"])
        self.assertEqual(files["encoders/internvl-c/text.onnx"]["facts"]["text"]["layers"], 2)
        self.assertEqual(files["encoders/internvl-c/vision.onnx"]["facts"]["precision"],
                         "float32 (upstream runs bfloat16)")


if __name__ == "__main__":
    unittest.main()
