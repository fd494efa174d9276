"""What the user sees when an input is wrong: one line naming the file and the remedy, nothing written."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from tests import support

from tests.random_upstream import random_projector, random_state  # noqa: E402

DIMS = {"vision": (80, 1), "text": (64, 1), "audio": (64, 1)}


class InputErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        support.require_environment()
        cls.dir = tempfile.mkdtemp(prefix="export-errors-", dir=support.WORK if os.path.isdir(support.WORK) else None)
        cls.good = os.path.join(cls.dir, "imagebind_huge.pth")
        cls.state = random_state(np.random.default_rng(5), **DIMS)
        torch.save(cls.state, cls.good)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def export(self, checkpoint: str, *extra: str):
        out = tempfile.mkdtemp(prefix="root-", dir=self.dir)
        p = support.run_export("--imagebind", checkpoint, "--clip-bpe", support.CLIP_BPE, "--out", out,
                               "--only", "imagebind", "--media", support.MEDIA, *extra)
        return p, out

    def assertNothingWritten(self, out: str):
        written = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(out, "encoders")) for f in fs]
        self.assertEqual(written, [])

    def error_line(self, p) -> str:
        lines = [l for l in p.stdout.splitlines() if l.startswith("error: ")]
        self.assertEqual(len(lines), 1, p.stdout + p.stderr)
        self.assertNotIn("Traceback", p.stdout + p.stderr)
        return lines[0]

    def test_a_corrupted_checkpoint(self):
        with open(self.good, "rb") as f:
            data = f.read()
        cut = os.path.join(self.dir, "cut.pth")
        with open(cut, "wb") as f:
            f.write(data[: len(data) * 2 // 3])
        p, out = self.export(cut)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(self.error_line(p), r"^error: \[imagebind\] '.*cut\.pth' cannot be read as a PyTorch checkpoint "
                                             r"\(.*\): it is damaged or truncated, download it again$")
        self.assertNothingWritten(out)

    def test_a_wrong_file(self):
        wrong = os.path.join(self.dir, "best.pt")
        torch.save(random_projector(512, 1024, np.random.default_rng(1), hidden=32).state_dict(), wrong)
        p, out = self.export(wrong)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(self.error_line(p), r"'.*best\.pt' is not ImageBind-huge \(imagebind_huge\.pth\): it has no "
                                             r"'modality_trunks\.vision\.blocks\.0\.attn\.in_proj_weight' \(its keys start with Head2\)")
        self.assertNothingWritten(out)

    def test_a_missing_key(self):
        state = dict(self.state)
        del state["modality_heads.text.proj.0.bias"]
        holed = os.path.join(self.dir, "holed.pth")
        torch.save(state, holed)
        p, out = self.export(holed)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not fit ImageBind-huge (imagebind_huge.pth): missing modality_heads.text.proj.0.bias", self.error_line(p))
        # the encoders before text were exported and checked; text was not written
        self.assertFalse(os.path.exists(os.path.join(out, "encoders/imagebind/text.onnx")))

    def test_a_path_that_does_not_exist(self):
        p, out = self.export(os.path.join(self.dir, "nope.pth"))
        self.assertEqual(p.returncode, 2)
        self.assertRegex(self.error_line(p), r"^error: --imagebind .*nope\.pth: no such file or folder$")

    def test_an_explicit_part_without_its_input(self):
        p = support.run_export("--out", os.path.join(self.dir, "x"), "--only", "clap-music")
        self.assertEqual(p.returncode, 2)
        self.assertRegex(self.error_line(p), r"^error: \[clap-music\] --clap-music, --roberta not given: skipping 4 files; "
                                             r"spaces left out: imagebind\+\+, internvl-ib\+\+, internvl-ib-ft\+\+$")

    def test_verify_upstream_without_upstream_code(self):
        """One line naming what to install (ImageBind) and FREEBIND_UPSTREAM_CODE; exit 1; nothing written."""
        freebind = os.path.join(self.dir, "checkpoints")
        os.makedirs(freebind, exist_ok=True)
        torch.save({}, os.path.join(freebind, "InternVL_IB_audio_with_head.pt"))  # refused before it is read
        env = {k: v for k, v in os.environ.items() if k != "FREEBIND_UPSTREAM_CODE"}
        out = os.path.join(self.dir, "verify-root")
        p = support.run_export("--imagebind", self.good, "--clip-bpe", support.CLIP_BPE, "--freebind", freebind,
                               "--out", out, "--only", "imagebind,imagebind-audio-ft", "--media", support.MEDIA,
                               "--verify-upstream", env=env)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(self.error_line(p),
                         "error: --verify-upstream runs upstream's own code, which is not importable here: ImageBind "
                         "(facebookresearch/ImageBind, with its requirements) for imagebind, imagebind-audio-ft; "
                         "FREEBIND_UPSTREAM_CODE (set it to a clone of zehanwang01/FreeBind) for imagebind-audio-ft. "
                         "Install it, or export without --verify-upstream")
        self.assertFalse(os.path.exists(out))

    def test_verify_upstream_with_a_dependency_of_upstream_missing(self):
        # an ImageBind that is installed but lacks one of its requirements; FreeBind's code in a folder
        # that is not a FreeBind clone
        fake = os.path.join(self.dir, "site")
        os.makedirs(os.path.join(fake, "imagebind"), exist_ok=True)
        with open(os.path.join(fake, "imagebind", "__init__.py"), "w") as f:
            f.write("import timm_that_is_not_installed\n")
        env = dict(os.environ, PYTHONPATH=fake, FREEBIND_UPSTREAM_CODE=self.dir)
        out = os.path.join(self.dir, "verify-root-2")
        p = support.run_export("--imagebind", self.good, "--clip-bpe", support.CLIP_BPE, "--out", out,
                               "--only", "imagebind", "--media", support.MEDIA, "--verify-upstream", env=env)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(self.error_line(p),
                         "error: --verify-upstream runs upstream's own code, which is not importable here: ImageBind "
                         "(facebookresearch/ImageBind, with its requirements): it needs 'timm_that_is_not_installed' "
                         "for imagebind. Install it, or export without --verify-upstream")
        self.assertFalse(os.path.exists(out))
        p = support.run_export("--freebind", fake, "--out", out, "--only", "projectors", "--verify-upstream", env=env)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(f"FREEBIND_UPSTREAM_CODE={self.dir} (it has no models/projector.py: is it a clone of "
                      f"zehanwang01/FreeBind?) for projectors", self.error_line(p))

    def test_omitted_inputs_skip_their_parts_with_one_line_each(self):
        out = os.path.join(self.dir, "skip-root")
        p = support.run_export("--out", out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        ib_spaces = "imagebind, imagebind++, internvl-ib, internvl-ib++, internvl-ib-ft, internvl-ib-ft++"
        pp = "imagebind++, internvl-ib++, internvl-ib-ft++"
        self.assertEqual([l for l in p.stdout.splitlines() if l.startswith("skip: ")], [
            f"skip: [imagebind] --imagebind, --clip-bpe not given: skipping 4 files; spaces left out: {ib_spaces}",
            "skip: [imagebind-audio-ft] --freebind not given: skipping 8 files; spaces left out: internvl-ib-ft, "
            "internvl-ib-ft++",
            f"skip: [clap-general] --clap-general, --roberta not given: skipping 4 files; spaces left out: {pp}",
            f"skip: [clap-music] --clap-music, --roberta not given: skipping 4 files; spaces left out: {pp}",
            "skip: [internvl-c] --internvl not given: skipping 3 files; spaces left out: internvl-ib, internvl-ib++, "
            "internvl-ib-ft, internvl-ib-ft++",
            "skip: [projectors] --freebind not given: skipping 49 files; spaces left out: imagebind++, internvl-ib, "
            "internvl-ib++, internvl-ib-ft, internvl-ib-ft++"])
        self.assertEqual(os.listdir(out), ["export.json"])
        # one input of a part given, the other omitted: the line names only the omitted one
        p = support.run_export("--out", out, "--clap-general", self.good, "--clap-music", self.good)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f"skip: [clap-general] --roberta not given: skipping 4 files; spaces left out: {pp}\n", p.stdout)
        self.assertIn(f"skip: [clap-music] --roberta not given: skipping 4 files; spaces left out: {pp}\n", p.stdout)

    def test_a_product_build_older_than_the_tool_is_named(self):
        # a freebind whose onnx-run does not speak the tool's protocol (a build from before it)
        fake = os.path.join(self.dir, "old_freebind.py")
        with open(fake, "w") as f:
            f.write("import sys\nfor line in sys.stdin:\n    print('Usage: freebind [command]', flush=True)\n")
        from product import Product, ProductError
        with Product(f"{support.PY} {fake}", os.path.join(support.REPO, "spaces")) as product:
            with self.assertRaisesRegex(ProductError, r"^the product at .*old_freebind\.py is older than this tool \(its "
                                                      r"onnx-run answered 'Usage: freebind \[command\]'\): rebuild it "
                                                      r"\(dotnet build src/Consumers -c Release\)$"):
                product.run_onnx(os.path.join(self.dir, "x.onnx"), [[("x", np.zeros((1, 2), np.float32))]])

    def test_an_unknown_part(self):
        p = support.run_export("--out", os.path.join(self.dir, "x"), "--only", "imagebind,clip")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--only clip: unknown part; parts are imagebind, imagebind-audio-ft, clap-general, clap-music, "
                      "internvl-c, projectors", self.error_line(p))


if __name__ == "__main__":
    unittest.main()
