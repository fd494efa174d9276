"""Reading checkpoint files and folders: formats, damage, and what a user is told."""

from __future__ import annotations

import json
import os
import struct
import tempfile
import unittest

import numpy as np
import torch

from tests import support  # noqa: F401

import checkpoints as C  # noqa: E402


def write_safetensors(path: str, tensors: dict) -> None:
    """The safetensors format by hand (the package is not available here)."""
    header, blobs, offset = {}, [], 0
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.float16: "F16"}
    for k, t in tensors.items():
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


class Reading(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ckpt-test-")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def test_nested_checkpoints_are_flattened_with_dots(self):
        # LAION CLAP's layout: weights under state_dict with a DataParallel `module.` prefix.
        torch.save({"epoch": 45, "state_dict": {"module.logit_scale_a": torch.tensor(2.0),
                                                "module.audio_branch.bn0.weight": torch.ones(64)}}, self.path("clap.pt"))
        state = C.open_state(self.path("clap.pt"))
        self.assertEqual(sorted(state), ["state_dict.module.audio_branch.bn0.weight", "state_dict.module.logit_scale_a"])
        self.assertEqual(state.extras, {"epoch": 45})
        self.assertEqual(list(state.under("state_dict.module.audio_branch.")), ["bn0.weight"])

    def test_truncated_file_is_reported_as_damaged(self):
        torch.save({"w": torch.randn(1000)}, self.path("ok.pt"))
        data = open(self.path("ok.pt"), "rb").read()
        with open(self.path("cut.pt"), "wb") as f:
            f.write(data[: len(data) // 2])
        with self.assertRaisesRegex(C.CheckpointError, r"cut\.pt' cannot be read as a PyTorch checkpoint .*damaged or truncated, download it again"):
            C.open_state(self.path("cut.pt"))

    def test_something_else_is_named(self):
        with open(self.path("notes.pt"), "wb") as f:
            f.write(b"hello, this is not a checkpoint\n" * 10)
        with self.assertRaisesRegex(C.CheckpointError, r"neither a PyTorch checkpoint nor a safetensors file"):
            C.open_state(self.path("notes.pt"))

    def test_python_objects_need_allow_pickle(self):
        torch.save({"w": torch.ones(2), "step": np.float64(3.0)}, self.path("np.pt"))
        with self.assertRaisesRegex(C.CheckpointError, r"stores a Python object .*--allow-pickle"):
            C.open_state(self.path("np.pt"))
        self.assertEqual(list(C.open_state(self.path("np.pt"), allow_pickle=True)), ["w"])

    def test_safetensors_including_bfloat16(self):
        tensors = {"a": torch.randn(3, 4), "b": torch.randn(5).to(torch.bfloat16), "c": torch.arange(4)}
        write_safetensors(self.path("m.safetensors"), tensors)
        state = C.open_state(self.path("m.safetensors"))
        for k, t in tensors.items():
            self.assertEqual(state[k].dtype, t.dtype)
            self.assertTrue(torch.equal(state[k], t))

    def test_sharded_folder_loads_lazily_and_names_a_missing_shard(self):
        folder = self.path("hf")
        os.makedirs(folder)
        write_safetensors(os.path.join(folder, "model-00001-of-00002.safetensors"), {"x.weight": torch.ones(2)})
        write_safetensors(os.path.join(folder, "model-00002-of-00002.safetensors"), {"y.weight": torch.zeros(3)})
        index = {"weight_map": {"x.weight": "model-00001-of-00002.safetensors", "y.weight": "model-00002-of-00002.safetensors"}}
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f)
        state = C.open_state(folder)
        self.assertEqual(sorted(state), ["x.weight", "y.weight"])
        self.assertTrue(torch.equal(state["y.weight"], torch.zeros(3)))
        os.remove(os.path.join(folder, "model-00002-of-00002.safetensors"))
        with self.assertRaisesRegex(C.CheckpointError, r"lacks .*model-00002-of-00002\.safetensors.*download is incomplete"):
            C.open_state(folder)

    def test_nan_weights_are_damage(self):
        from models import projector
        from tests.random_upstream import random_projector
        m = random_projector(8, 4, np.random.default_rng(0), hidden=16)
        sd = m.state_dict()
        sd["Head2.mlps.3.weight"][0, 0] = float("nan")
        torch.save(sd, self.path("nan.pt"))
        with self.assertRaisesRegex(C.CheckpointError, r"Head2\.mlps\.3\.weight holds NaN or infinite values"):
            projector.load(C.open_state(self.path("nan.pt")), "a projector")


if __name__ == "__main__":
    unittest.main()
