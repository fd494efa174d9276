"""Key layouts of the full-size upstream checkpoints, without their weights.

Each fixture (fixtures/*.json, key → shape) was dumped from upstream's own classes
(facebookresearch/ImageBind 53680b0, zehanwang01/FreeBind d0606bc); it is loaded as a StateDict of
`meta` tensors through the same code that reads a real checkpoint, so a layout mistake shows here
without gigabytes of weights. The random checkpoints the other tests use are held to the same layouts.
"""

from __future__ import annotations

import re
import unittest

from tests import support  # noqa: F401  (puts tools/export on sys.path)

import checkpoints as C  # noqa: E402
from models import imagebind, projector  # noqa: E402
from tests import random_upstream as R  # noqa: E402


def fixture(name: str) -> dict:
    return C.read_layout(f"{support.FIXTURES}/{name}.json")


def fold(keys) -> set[str]:
    """Keys with block indices replaced, so a reduced checkpoint compares with a full one."""
    return {re.sub(r"\.(blocks|projectors)\.\d+\.", r".\1.#.", k) for k in keys}


def used(keys) -> set[str]:
    return {k for k in keys if k.split(".")[1] in ("vision", "text", "audio")}


class ImageBindLayout(unittest.TestCase):
    def test_imagebind_huge_loads_at_full_size(self):
        exports = list(imagebind.exports(C.meta_state(fixture("imagebind_huge"), "imagebind_huge.pth")))
        got = {e.file: (e.facts["blocks"], e.facts["width"], e.facts["heads"], e.width) for e in exports}
        self.assertEqual(got, {"encoders/imagebind/vision.onnx": (32, 1280, 16, 1024),
                               "encoders/imagebind/audio.onnx": (12, 768, 12, 1024),
                               "encoders/imagebind/text.onnx": (24, 1024, 16, 1024)})
        self.assertTrue(all(p.is_meta for e in exports for p in e.module.parameters()))

    def test_finetuned_audio_file_loads_at_full_size(self):
        files = [f"InternVL_IB_FT_Audio_Head/{m}/best.onnx" for m in projector.DATA_MODES]
        exports = list(imagebind.finetuned_audio_exports(C.meta_state(fixture("InternVL_IB_audio_with_head"), "ft.pt"), files))
        self.assertEqual([e.file for e in exports], [imagebind.FT_AUDIO] + files)
        self.assertEqual((exports[0].facts["blocks"], exports[0].facts["width"], exports[0].width), (12, 768, 1024))
        self.assertTrue(all((e.inputs[0].shape, e.width) == ((1024,), 768) for e in exports[1:]))

    def test_projector_checkpoints_load(self):
        for i, o in ((512, 1024), (1024, 768), (512, 768)):
            state = C.meta_state(fixture(f"freebind_projector_{i}x{o}"), "best.pt")
            self.assertEqual(len(state), 14)
            m = projector.load(state, "a projector")
            self.assertEqual((m.in_dim, m.out_dim), (i, o))

    def test_random_checkpoints_follow_the_upstream_layouts(self):
        import numpy as np
        rng = np.random.default_rng(0)
        small = R.random_state(rng, **support.IB_DIMS)
        self.assertEqual(fold(used(small)), fold(used(fixture("imagebind_huge"))))
        ft = {f"ib.{k}": v for k, v in R.random_state(rng, audio=(64, 1), audio_only=True).items()}
        for i in range(7):
            ft.update({f"ib_head.projectors.{i}.{k}": v for k, v in R.random_projector(1024, 768, rng, hidden=8).state_dict().items()})
        self.assertEqual(fold(ft), fold(fixture("InternVL_IB_audio_with_head")))
        self.assertEqual(set(R.random_projector(512, 1024, rng, hidden=8).state_dict()),
                         set(fixture("freebind_projector_512x1024")))


class ExactKeys(unittest.TestCase):
    """A missing, unexpected or mis-shaped key is an error naming it; other modalities are tolerated."""

    def load(self, layout: dict) -> list:
        return list(imagebind.exports(C.meta_state(layout, "imagebind_huge.pth")))

    def test_missing_key_is_named(self):
        layout = fixture("imagebind_huge")
        del layout["modality_trunks.audio.blocks.7.norm_2.bias"]
        with self.assertRaisesRegex(C.CheckpointError, r"missing modality_trunks\.audio\.blocks\.7\.norm_2\.bias"):
            self.load(layout)

    def test_unexpected_key_is_named(self):
        layout = fixture("imagebind_huge")
        layout["modality_heads.vision.3.weight"] = [1024, 1024]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected modality_heads\.vision\.3\.weight"):
            self.load(layout)

    def test_misshaped_key_is_named(self):
        layout = fixture("imagebind_huge")
        layout["modality_trunks.text.blocks.3.mlp.fc2.weight"] = [1024, 4000]
        with self.assertRaisesRegex(C.CheckpointError, r"wrong shape: modality_trunks\.text\.blocks\.3\.mlp\.fc2\.weight is \[1024, 4000\], expected \[1024, 4096\]"):
            self.load(layout)

    def test_unused_modalities_are_tolerated_but_nothing_else(self):
        layout = {k: v for k, v in fixture("imagebind_huge").items() if ".imu." not in k}  # fewer extras: fine
        self.assertEqual(len(self.load(layout)), 3)
        layout["foo.bar"] = [1]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected foo\.bar"):
            self.load(layout)

    def test_a_wrong_file_is_named_as_such(self):
        with self.assertRaisesRegex(C.CheckpointError, r"is not ImageBind-huge .*its keys start with Head2"):
            self.load(fixture("freebind_projector_512x1024"))

    def test_finetuned_head_must_have_seven_projectors(self):
        layout = {k: v for k, v in fixture("InternVL_IB_audio_with_head").items() if ".projectors.6." not in k}
        files = [f"InternVL_IB_FT_Audio_Head/{m}/best.onnx" for m in projector.DATA_MODES]
        with self.assertRaisesRegex(C.CheckpointError, r"has 6 head projectors"):
            list(imagebind.finetuned_audio_exports(C.meta_state(layout, "ft.pt"), files))


if __name__ == "__main__":
    unittest.main()
