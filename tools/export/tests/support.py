"""Shared by the export tests: paths, the product's CLI, the manifests' parts."""

from __future__ import annotations

import os
import subprocess
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.dirname(HERE)
REPO = os.path.normpath(os.path.join(TOOL, "..", ".."))
if TOOL not in sys.path:
    sys.path.insert(0, TOOL)

import parts as P  # noqa: E402

PY = "/usr/bin/python3"
WORK = os.path.join(os.environ.get("FREEBIND_TESTDATA") or os.path.join(REPO, ".work", "testdata"), "export")
SHARED = os.environ.get("FREEBIND_SHARED") or os.path.join(REPO, "..", "shared")
MEDIA = os.path.join(SHARED, "media", "freebind-samples")
CLIP_BPE = os.path.join(SHARED, "vocab", "bpe_simple_vocab_16e6.txt.gz")
FIXTURES = os.path.join(TOOL, "fixtures")
DLL = os.path.join(REPO, "src", "Consumers", "bin", "Release", "net10.0", "freebind.dll")

from tests.upstream_tree import REDUCED as IB_DIMS  # noqa: E402  reduced ImageBind: (width, blocks) per trunk


def require_environment() -> None:
    """The export tests need the built product and the shared samples: fail loudly without them."""
    missing = [p for p in (DLL, MEDIA, CLIP_BPE) if not os.path.exists(p)]
    if missing:
        raise RuntimeError(f"missing {missing}: build the product (dotnet build -c Release) and keep the shared "
                           f"folder beside the checkout (or set FREEBIND_SHARED)")


def freebind(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, Onnx__ExecutionProvider="cpu", Spaces__ManifestDirectory=os.path.join(REPO, "spaces"))
    return subprocess.run(["dotnet", DLL, *args], env=env, capture_output=True, text=True)


def run_export(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env, FREEBIND_SHARED=SHARED)
    return subprocess.run([PY, os.path.join(TOOL, "export.py"), *args], env=env, capture_output=True, text=True)


def manifests() -> P.Manifests:
    return P.read_manifests(os.path.join(REPO, "spaces"))


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


from tests.upstream_tree import UpstreamTree  # noqa: E402,F401  (re-exported for the tests)
