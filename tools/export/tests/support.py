"""Shared by the export tests: paths, the product's CLI, and the fake upstream tree.

The tree holds random-weight checkpoints in each upstream on-disk layout, written under
$FREEBIND_TESTDATA/export (or .work/testdata/export) and rewritten when a writer changes:
ImageBind reduced in width and depth; FreeBind's projector sets at full size; the fine-tuned audio
file (reduced trunk, full-size head); both LAION CLAP files at full size; the InternVL-14B-224px
Hugging Face folder reduced; the RoBERTa and SentencePiece tokenizers of tools/reference.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.dirname(HERE)
REPO = os.path.normpath(os.path.join(TOOL, "..", ".."))
if TOOL not in sys.path:
    sys.path.insert(0, TOOL)

import parts as P  # noqa: E402
from models import imagebind, projector, random_checkpoints  # noqa: E402

PY = "/usr/bin/python3"
WORK = os.path.join(os.environ.get("FREEBIND_TESTDATA") or os.path.join(REPO, ".work", "testdata"), "export")
SHARED = os.environ.get("FREEBIND_SHARED") or os.path.join(REPO, "..", "shared")
MEDIA = os.path.join(SHARED, "media", "freebind-samples")
CLIP_BPE = os.path.join(SHARED, "vocab", "bpe_simple_vocab_16e6.txt.gz")
FIXTURES = os.path.join(TOOL, "fixtures")
DLL = os.path.join(REPO, "src", "Consumers", "bin", "Release", "net10.0", "freebind.dll")

# Reduced ImageBind used by the tests: (width, blocks) per trunk; head widths stay upstream's.
IB_DIMS = {"vision": (160, 2), "text": (128, 2), "audio": (128, 2)}


def require_environment() -> None:
    """The export tests need the built product and the shared samples: fail loudly without them."""
    missing = [p for p in (DLL, MEDIA, CLIP_BPE) if not os.path.exists(p)]
    if missing:
        raise RuntimeError(f"missing {missing}: build the product (dotnet build -c Release) and keep the shared "
                           f"folder beside the checkout (or set FREEBIND_SHARED)")


def freebind(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, Onnx__ExecutionProvider="cpu", Spaces__ManifestDirectory=os.path.join(REPO, "spaces"))
    return subprocess.run(["dotnet", DLL, *args], env=env, capture_output=True, text=True)


def run_export(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FREEBIND_SHARED=SHARED)
    return subprocess.run([PY, os.path.join(TOOL, "export.py"), *args], env=env, capture_output=True, text=True)


def manifests() -> P.Manifests:
    return P.read_manifests(os.path.join(REPO, "spaces"))


def projector_sets() -> dict[str, tuple[int, int]]:
    """Every projector set the manifests name, except the fine-tuned head (inside its own file)."""
    sets = {}
    for rel, e in manifests().parts["projectors"].files.items():
        sets[e.projector_set] = (e.input_width, e.width)
    return sets


def concatenate_wavs(sources: list[str], target: str) -> None:
    """One PCM WAV of the sources one after another (same format), e.g. a clip longer than CLAP's 10 s."""
    import wave
    frames, params = [], None
    for s in sources:
        with wave.open(s, "rb") as w:
            if params is not None and w.getparams()[:3] != params[:3]:
                raise ValueError(f"{s} differs in format from {sources[0]}")
            params = w.getparams()
            frames.append(w.readframes(w.getnframes()))
    with wave.open(target, "wb") as w:
        w.setparams(params)
        for f in frames:
            w.writeframes(f)


class UpstreamTree:
    """The fake upstream downloads, written once per test run."""

    def __init__(self, root: str = WORK):
        self.root = os.path.join(root, "upstream")
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

    @staticmethod
    def version() -> str:
        # The writers decide the content: a change to them rewrites the tree.
        import hashlib
        h = hashlib.sha256()
        for f in sorted(os.listdir(os.path.join(TOOL, "models"))) + ["../tests/support.py"]:
            if f.endswith(".py"):
                with open(os.path.join(TOOL, "models", f), "rb") as fh:
                    h.update(fh.read())
        return h.hexdigest()

    def ensure(self) -> "UpstreamTree":
        if os.path.exists(self.stamp):
            with open(self.stamp, encoding="utf-8") as f:
                if f.read().strip() == self.version():
                    return self
        os.makedirs(self.freebind, exist_ok=True)
        rng = np.random.default_rng(20240502)
        imagebind.write_random_checkpoint(self.imagebind, rng, **IB_DIMS)
        imagebind.write_random_finetuned(self.finetuned, rng, audio=IB_DIMS["audio"])
        projector.write_random_folder(self.freebind, projector_sets(), rng)
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
