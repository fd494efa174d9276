#!/usr/bin/python3
"""A fake upstream download: random-weight checkpoints in every upstream on-disk layout.

    /usr/bin/python3 tools/export/tests/upstream_tree.py --out DIR [--full]

Writes DIR/imagebind_huge.pth, DIR/FreeBind/checkpoints/ (every projector set the manifests name at
full size, and InternVL_IB_audio_with_head.pt), DIR/630k-fusion-best.pt and
DIR/music_speech_audioset_epoch_15_esc_89.98.pt (full size), DIR/InternVL-14B-224px/ (reduced: the
full one needs more than 24 GB to export) and DIR/tokenizers/roberta (tools/reference's small test
tokenizers), and prints export.py's arguments for it. ImageBind and the fine-tuned audio trunk are
reduced in width and depth (what the tests use) unless --full, which writes them at upstream's
size with imagebind_huge.pth's exact 1311 keys (4.5 GiB): the run times and memory in
docs/export.md were measured on that.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.dirname(HERE)
REPO = os.path.normpath(os.path.join(TOOL, "..", ".."))
if TOOL not in sys.path:
    sys.path.insert(0, TOOL)

import checkpoints as C  # noqa: E402
import parts as P  # noqa: E402
from models import random_checkpoints  # noqa: E402
from tests import random_upstream  # noqa: E402

SHARED = os.environ.get("FREEBIND_SHARED") or os.path.join(REPO, "..", "shared")
CLIP_BPE = os.path.join(SHARED, "vocab", "bpe_simple_vocab_16e6.txt.gz")
REDUCED = {"vision": (160, 2), "text": (128, 2), "audio": (128, 2)}
FULL = {"vision": (1280, 32), "text": (1024, 24), "audio": (768, 12)}


def projector_sets() -> dict[str, tuple[int, int]]:
    """Every projector set the manifests name, except the fine-tuned head (inside its own file)."""
    m = P.read_manifests(os.path.join(REPO, "spaces"))
    return {e.projector_set: (e.input_width, e.width) for e in m.parts["projectors"].files.values()}


class UpstreamTree:
    """The fake upstream downloads; written once, and again when a writer changes."""

    def __init__(self, root: str, full: bool = False):
        self.root = root
        self.full = full
        self.imagebind = os.path.join(self.root, "imagebind_huge.pth")
        self.freebind = os.path.join(self.root, "FreeBind", "checkpoints")
        self.finetuned = os.path.join(self.freebind, P.FT_AUDIO_NAMES[0])
        self.clap_general = os.path.join(self.root, "630k-fusion-best.pt")
        self.clap_music = os.path.join(self.root, "music_speech_audioset_epoch_15_esc_89.98.pt")
        self.internvl = os.path.join(self.root, "InternVL-14B-224px")
        self.roberta = os.path.join(self.root, "tokenizers", "roberta")
        self.stamp = os.path.join(self.root, "complete")

    def arguments(self) -> list[str]:
        """export.py's inputs for the whole tree."""
        return ["--imagebind", self.imagebind, "--freebind", self.freebind, "--clap-general", self.clap_general,
                "--clap-music", self.clap_music, "--roberta", self.roberta, "--internvl", self.internvl,
                "--clip-bpe", CLIP_BPE]

    def version(self) -> str:
        # The writers decide the content: a change to them rewrites the tree.
        h = hashlib.sha256()
        for f in sorted(os.listdir(os.path.join(TOOL, "models"))) + ["../tests/upstream_tree.py", "../tests/random_upstream.py"]:
            if f.endswith(".py"):
                with open(os.path.join(TOOL, "models", f), "rb") as fh:
                    h.update(fh.read())
        return h.hexdigest() + ("-full" if self.full else "")

    def ensure(self) -> "UpstreamTree":
        if os.path.exists(self.stamp):
            with open(self.stamp, encoding="utf-8") as f:
                if f.read().strip() == self.version():
                    return self
        os.makedirs(self.freebind, exist_ok=True)
        rng = np.random.default_rng(20240502)
        dims = FULL if self.full else REDUCED
        extras = C.read_layout(os.path.join(TOOL, "fixtures", "imagebind_huge.json")) if self.full else None
        random_upstream.write_random_checkpoint(self.imagebind, rng, extras=extras, **dims)
        random_upstream.write_random_finetuned(self.finetuned, rng, audio=dims["audio"])
        random_upstream.write_random_folder(self.freebind, projector_sets(), rng)
        random_checkpoints.write_clap(self.clap_general, "general", rng)
        random_checkpoints.write_clap(self.clap_music, "music", rng)
        sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
        import make_tokenizers  # the test tokenizers: a small RoBERTa BPE and a LLaMA-like SentencePiece
        make_tokenizers.write_roberta(self.root)
        spm = make_tokenizers.write_sentencepiece(self.root)
        random_checkpoints.write_internvl(self.internvl, rng, tokenizer=[p for p in spm if p.endswith(".model")][0])
        with open(self.stamp, "w") as f:
            f.write(self.version() + "\n")
        return self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--out", required=True)
    ap.add_argument("--full", action="store_true", help="ImageBind and the fine-tuned audio trunk at upstream's size")
    args = ap.parse_args()
    tree = UpstreamTree(os.path.abspath(args.out), full=args.full).ensure()
    print(" ".join(tree.arguments()))


if __name__ == "__main__":
    main()
