"""LAION CLAP (General: HTSAT-tiny + fusion, Music: HTSAT-base) and RoBERTa: loading, exact keys,
ONNX through the product's runtime, batch 1 vs N, and the long-clip (fusion) path.

Full size where it costs nothing (the key-layout fixtures, loaded as `meta` tensors, and the random
writer's layout against them); reduced random checkpoints in the same layout for everything that
runs numbers, so the module stays within a minute or two on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import unittest
import wave

import numpy as np
import torch

from tests import support

import checkpoints as C  # noqa: E402
import checks  # noqa: E402
import onnx_files  # noqa: E402
from models import clap, random_checkpoints as RC  # noqa: E402
from models.htsat import FRAMES  # noqa: E402
from product import Product  # noqa: E402

WORK = os.path.join(support.WORK, "clap")
FIXTURE = {"general": "630k-fusion-best", "music": "music_speech_audioset_epoch_15_esc_89.98"}
PREFIX = "state_dict.module."


def fixture(variant: str) -> dict:
    return C.read_layout(os.path.join(support.FIXTURES, FIXTURE[variant] + ".json"))


def meta(layout: dict, name: str = "630k-fusion-best.pt") -> C.StateDict:
    return C.meta_state(layout, name)


def reduced_path(variant: str) -> str:
    return os.path.join(WORK, f"clap-{variant}-reduced.pt")


def setUpModule():
    os.makedirs(WORK, exist_ok=True)
    for i, variant in enumerate(("general", "music")):
        RC.write_clap(reduced_path(variant), variant, np.random.default_rng(100 + i), reduced=True)


class Layout(unittest.TestCase):
    """The full-size upstream layouts (fixtures dumped from laion_clap's own CLAP model)."""

    def test_clap_general_loads_at_full_size(self):
        audio, text = clap.exports(meta(fixture("general")), "general")
        self.assertEqual((audio.file, audio.width, audio.profile), ("encoders/clap-general/audio.onnx", 512, "clap-fusion"))
        self.assertEqual(audio.facts["htsat"], {"embed_dim": 96, "depths": [2, 2, 6, 2], "heads": [4, 8, 16, 32],
                                                "window": 8, "fusion": True})
        self.assertEqual([i.name for i in audio.inputs], ["mel_fusion"])
        self.assertEqual((text.file, text.width, text.facts["roberta"]),
                         ("encoders/clap-general/text.onnx", 512, {"layers": 12, "width": 768, "heads": 12}))
        self.assertTrue(all(p.is_meta for e in (audio, text) for p in e.module.parameters()))

    def test_clap_music_loads_at_full_size(self):
        audio, text = clap.exports(meta(fixture("music"), "music.pt"), "music")
        self.assertEqual(audio.facts["htsat"], {"embed_dim": 128, "depths": [2, 2, 12, 2], "heads": [4, 8, 16, 32],
                                                "window": 8, "fusion": False})
        self.assertEqual([(i.name, i.shape) for i in audio.inputs], [("waveform", (480000,))])
        self.assertEqual((audio.width, text.width), (512, 512))

    def test_random_checkpoints_have_the_upstream_layout_key_for_key(self):
        for variant in ("general", "music"):
            got = {PREFIX + k: v for k, v in RC.clap_layout(variant).items()}
            self.assertEqual(got, fixture(variant), variant)
            # the writer fills exactly that layout (checked on the reduced size, same code path)
            state = RC.clap_state_dict(variant, np.random.default_rng(0), reduced=True)
            self.assertEqual({k: list(v.shape) for k, v in state.items()}, RC.clap_layout(variant, reduced=True))

    def test_reduced_checkpoints_keep_the_layout(self):
        def fold(keys):
            import re
            return {re.sub(r"\.(blocks|layer)\.\d+\.", r".\1.#.", k) for k in keys}
        for variant in ("general", "music"):
            state = C.open_state(reduced_path(variant))
            self.assertEqual(fold(state), fold(fixture(variant)), variant)


class ExactKeys(unittest.TestCase):
    """Missing, unexpected and mis-shaped keys, wrong and damaged files: each one clear error."""

    def load(self, layout: dict, variant: str = "general") -> list:
        return list(clap.exports(meta(layout), variant))

    def test_missing_key_is_named(self):
        layout = fixture("general")
        del layout[PREFIX + "audio_branch.layers.2.blocks.3.attn.relative_position_bias_table"]
        with self.assertRaisesRegex(C.CheckpointError, r"missing state_dict\.module\.audio_branch\.layers\.2\.blocks\.3\."
                                                       r"attn\.relative_position_bias_table"):
            self.load(layout)

    def test_unexpected_key_is_named(self):
        layout = fixture("general")
        layout[PREFIX + "text_branch.encoder.layer.3.attention.self.rotary.weight"] = [8]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected state_dict\.module\.text_branch\.encoder\.layer\.3"
                                                       r"\.attention\.self\.rotary\.weight"):
            self.load(layout)
        layout = fixture("general")
        layout[PREFIX + "audio_branch.absolute_pos_embed"] = [1, 4096, 96]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected state_dict\.module\.audio_branch\.absolute_pos_embed"):
            self.load(layout)
        layout = fixture("general")
        layout[PREFIX + "bias_corrector.weight"] = [512]
        with self.assertRaisesRegex(C.CheckpointError, r"unexpected state_dict\.module\.bias_corrector\.weight"):
            self.load(layout)

    def test_misshaped_key_is_named(self):
        layout = fixture("music")
        layout[PREFIX + "audio_projection.0.weight"] = [512, 768]
        with self.assertRaisesRegex(C.CheckpointError, r"audio_projection\.0\.weight is \[512, 768\], expected \[512, 1024\]"):
            self.load(layout, "music")

    def test_known_unused_parts_are_tolerated_and_recorded(self):
        audio, _ = self.load(fixture("general"))
        self.assertIn("audio_branch.tscam_conv.*", audio.facts["unused_keys"])
        self.assertIn("text_branch.embeddings.position_ids", audio.facts["unused_keys"])

    def test_swapped_checkpoints_are_named(self):
        with self.assertRaisesRegex(C.CheckpointError, r"lacks HTS-AT's feature-fusion branch, so it is not the "
                                                       r"clap-general checkpoint .* --clap-general and --clap-music"):
            self.load(fixture("music"), "general")
        with self.assertRaisesRegex(C.CheckpointError, r"has HTS-AT's feature-fusion branch, so it is not the clap-music"):
            self.load(fixture("general"), "music")

    def test_a_wrong_file_is_named(self):
        projector = {"Head2.mlps.0.weight": [2048, 512], "Head2.mlps.0.bias": [2048]}
        with self.assertRaisesRegex(C.CheckpointError, r"is not a LAION CLAP checkpoint: it has no "
                                                       r"'state_dict\.module\.audio_branch\.bn0\.weight' \(its keys start with Head2\)"):
            self.load(projector)

    def test_a_damaged_file_is_named(self):
        damaged = os.path.join(WORK, "damaged.pt")
        with open(reduced_path("general"), "rb") as f, open(damaged, "wb") as g:
            g.write(f.read(200_000))
        with self.assertRaisesRegex(C.CheckpointError, r"cannot be read as a PyTorch checkpoint .* damaged or truncated"):
            list(clap.exports(damaged, "general"))

    def test_non_finite_weights_are_named(self):
        state = RC.clap_state_dict("music", np.random.default_rng(1), reduced=True)
        state["audio_branch.layers.1.blocks.0.mlp.fc2.weight"][0, 0] = float("nan")
        path = os.path.join(WORK, "nan.pt")
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
        with self.assertRaisesRegex(C.CheckpointError, r"audio_branch\.layers\.1\.blocks\.0\.mlp\.fc2\.weight holds NaN"):
            list(clap.exports(path, "music"))

    def test_upstreams_other_wrappings_load(self):
        # factory.load_state_dict also takes a bare state dict, with or without DDP's `module.` prefix
        state = RC.clap_state_dict("general", np.random.default_rng(2), reduced=True)
        for name, obj in (("bare.pt", state), ("bare-module.pt", {"module." + k: v for k, v in state.items()})):
            path = os.path.join(WORK, name)
            torch.save(obj, path)
            audio, text = clap.exports(path, "general")
            self.assertEqual((audio.width, text.width), (512, 512))


class LongClips(unittest.TestCase):
    """CLAP-General's fusion branch in the exported graph (exported at batch 2, run by the product's
    ONNX Runtime). The other encoders' ONNX checks run through the command in test_expert_parts."""

    @classmethod
    def setUpClass(cls):
        support.require_environment()
        cls.product = Product(None, os.path.join(support.REPO, "spaces"))
        cls.root = os.path.join(WORK, "root")
        shutil.rmtree(cls.root, ignore_errors=True)
        expected = support.manifests().parts["clap-general"].files
        cls.exp = next(iter(clap.exports(reduced_path("general"), "general")))
        checks.check_declaration(cls.exp, expected[cls.exp.file])
        onnx_files.write(cls.exp, cls.root, batch=2, seed=0)
        cls.path = os.path.join(cls.root, cls.exp.file)
        checks.check_file(cls.path, cls.exp, expected[cls.exp.file])

    @classmethod
    def tearDownClass(cls):
        cls.product.close()

    def test_short_and_long_rows_mixed_in_one_batch(self):
        # random rows alternate short (4 equal channels) and long clips; each row alone equals its batch row
        figures = checks.compare(self.path, self.exp, self.product, seed=0, real=None)
        self.assertLessEqual(figures["random_max_abs"], 1e-5)
        self.assertLessEqual(figures["batch1_vs_batchN_max_abs"], 1e-5)

    def test_the_products_tensors_of_a_10s_and_a_25s_clip(self):
        self.long_clips(self.exp, self.path)

    def long_clips(self, exp, path: str) -> None:
        """The product's clap-fusion tensors for a 10 s and a 25 s clip: the first is a short clip
        (4 equal channels, fusion off), the second a long one (fusion on), in ONNX as in PyTorch."""
        tensors = []
        for seconds in (10, 25):
            wav = os.path.join(WORK, f"tone-{seconds}s.wav")
            write_wav(wav, seconds)
            tensors.append(self.product.preprocess("clap-fusion", [], wav, ["mel_fusion"])[0])
        mel = np.concatenate(tensors)
        self.assertEqual(mel.shape, (2, 4, FRAMES, 64))
        self.assertTrue(all((mel[0, c] == mel[0, 0]).all() for c in range(4)))
        self.assertFalse((mel[1, 1] == mel[1, 0]).all())
        module = exp.module
        x = torch.from_numpy(mel)
        with torch.no_grad():
            ours = module(x).numpy()
            # the same rows with the fusion branch forced off: the short clip must not move, the long one must
            branch = module.audio_branch
            fused = branch.patch_embed.fusion
            branch.patch_embed.fusion = False
            try:
                plain = module(x).numpy()
            finally:
                branch.patch_embed.fusion = fused
        np.testing.assert_array_equal(ours[0], plain[0])
        self.assertGreater(float(np.abs(ours[1] - plain[1]).max()), 1e-3)
        (onnx_out,), _ = self.product.run_onnx(path, [[("mel_fusion", mel)]])
        self.assertLessEqual(float(np.abs(onnx_out - ours).max()), 1e-4)


class Float16(unittest.TestCase):
    """CLAP-Music declares its STFT/mel/dB front end float32 for `--fp16`: without it a silent clip is
    NaN (1e-10 is 0 in float16) and a loud tone's power passes 65504."""

    def test_clap_music_front_end_stays_float32(self):
        support.require_environment()
        product = Product(None, os.path.join(support.REPO, "spaces"))
        self.addCleanup(product.close)
        exp = next(iter(clap.exports(reduced_path("music"), "music")))
        self.assertEqual(exp.float32_scopes, clap.FRONT_END)
        root = os.path.join(WORK, "fp16")
        shutil.rmtree(root, ignore_errors=True)
        onnx_files.write(exp, root, batch=2, seed=0)
        f32 = os.path.join(root, exp.file)
        f16 = os.path.join(root, "audio.fp16.onnx")
        shutil.copyfile(f32, f16)
        onnx_files.convert_fp16(f16, exp.float32_scopes)
        t = np.arange(480000) / 48000
        noise = np.clip(np.random.default_rng(0).normal(0, 0.5, t.size), -1, 1)
        x = np.stack([np.sin(2 * np.pi * 1000 * t), np.zeros_like(t), noise]).astype(np.float32)
        (a,), _ = product.run_onnx(f32, [[("waveform", x)]])
        (b,), _ = product.run_onnx(f16, [[("waveform", x)]])
        self.assertTrue(np.isfinite(b).all())
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        self.assertGreater(float(cos.min()), 0.9999)


def write_wav(path: str, seconds: int, rate: int = 48000) -> None:
    """A chirp with noise, 16-bit mono: different content in every part of the clip."""
    t = np.arange(seconds * rate) / rate
    rng = np.random.default_rng(seconds)
    x = 0.4 * np.sin(2 * np.pi * (200 + 150 * t) * t) + 0.05 * rng.standard_normal(t.size)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


if __name__ == "__main__":
    unittest.main()
