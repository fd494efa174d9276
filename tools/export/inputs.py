"""What the user gave: which parts can run from it, and the real media and texts of the checks."""

from __future__ import annotations

import os

import numpy as np

import checks
import parts as P
from product import REPO, Product

# The real-input check's texts: FreeBind's three demo captions, and one longer than every text
# context (77 or 80 tokens), so that truncation, the end token and padding are exercised.
TEXTS = ["an audio of barbeque", "an audio of toilet", "an audio of train",
         "A long caption keeps going well past the context of every text encoder, so that truncation, the end "
         "token and padding are all exercised by the real-input check: " + "birds sing near a busy road, " * 12]
FOLDER_INPUTS = {"freebind", "roberta", "internvl"}


class UsageError(Exception):
    """The command line cannot be served as given (exit code 2, nothing exported)."""


def input_problem(dest: str, value: str) -> str | None:
    """Why a given input cannot be used (None when it can)."""
    opt = P.OPTION_OF[dest]
    if not os.path.exists(value):
        return f"{opt} {value}: no such file or folder"
    if dest in FOLDER_INPUTS and not os.path.isdir(value):
        return f"{opt} {value}: expected a folder"
    if dest not in FOLDER_INPUTS and not os.path.isfile(value):
        return f"{opt} {value}: expected a file"
    if dest == "roberta":
        absent = [f for f in ("vocab.json", "merges.txt") if not os.path.isfile(os.path.join(value, f))]
        if absent:
            return f"{opt} {value}: no {' or '.join(absent)} (they come from the roberta-base tokenizer)"
    if dest == "internvl" and not os.path.isfile(os.path.join(value, "tokenizer.model")):
        return f"{opt} {value}: no tokenizer.model (is this the InternVL-14B-224px folder?)"
    return None


def plan(given: dict, only: str | None, manifests: P.Manifests) -> tuple[list[tuple[P.Part, list[str]]], list[str]]:
    """(part, files to export) for each part that can run, and one message per thing left out.

    A part whose input is missing is skipped (with `--only` that is an error); a given input that
    cannot be used is always an error, before anything is exported."""
    selected = list(manifests.parts)
    if only:
        selected = [s.strip() for s in only.split(",") if s.strip()]
        unknown = [s for s in selected if s not in manifests.parts]
        if unknown:
            raise UsageError(f"--only {','.join(unknown)}: unknown part; parts are {', '.join(manifests.parts)}")
    runs, skipped = [], []
    for name in selected:
        part = manifests.parts[name]
        for i in part.inputs:
            if given.get(i) and (problem := input_problem(i, given[i])):
                raise UsageError(problem)
        missing = [P.OPTION_OF[i] for i in part.inputs if not given.get(i)]
        files = sorted(part.files)
        everything = list(part.files) + part.tokenizers
        reason = f"{', '.join(missing)} not given" if missing else None
        if not missing and name == P.FT_EXPERT and not P.ft_audio_file(given["freebind"]):
            reason = f"--freebind has no {' or '.join(P.FT_AUDIO_NAMES)}"
        if reason is None and name == "projectors":
            absent = [f for f in files if not os.path.isfile(P.projector_source(given["freebind"], f))]
            if absent:
                sets = sorted({f.split("/")[0] for f in absent})
                skipped.append(f"[projectors] --freebind lacks {', '.join(sets)} (e.g. "
                               f"{P.projector_source(given['freebind'], absent[0])}): spaces left out: "
                               f"{', '.join(manifests.spaces_needing(absent))}")
                files = [f for f in files if f not in absent]
        if reason is not None:
            msg = (f"[{name}] {reason}: skipping {len(everything)} files; spaces left out: "
                   f"{', '.join(manifests.spaces_needing(everything))}")
            if only:
                raise UsageError(msg)
            skipped.append(msg)
            continue
        runs.append((part, files))
    return runs, skipped


def find_media(media: str | None, freebind: str | None) -> str | None:
    """The folder of sample media: --media, $FREEBIND_MEDIA, FreeBind's assets/ beside --freebind,
    or the test machines' shared samples."""
    candidates = [media, os.environ.get("FREEBIND_MEDIA")]
    if freebind:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(freebind.rstrip("/"))), "assets"))
    shared = os.environ.get("FREEBIND_SHARED") or os.path.join(REPO, "..", "shared")
    candidates.append(os.path.join(shared, "media", "freebind-samples"))
    for c in candidates:
        if c and os.path.isdir(c) and media_files(c, "image") and media_files(c, "audio"):
            return os.path.abspath(c)
    if media:
        raise UsageError(f"--media {media}: no images (.jpg/.jpeg/.png) and audio (.wav/.flac/.mp3/.ogg) in it")
    raise UsageError("the real-input check needs sample media: pass --media DIR (images and audio files, "
                     "e.g. FreeBind's assets/ folder)")


def media_files(folder: str, kind: str) -> list[str]:
    ext = (".jpg", ".jpeg", ".png") if kind == "image" else (".wav", ".flac", ".mp3", ".ogg")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(ext))[:3]


class RealInputs:
    """The model tensors of the sample media and texts, made by the product's preprocessing, per
    profile; for projectors, the atoms of their source expert's exported encoders on the same items."""

    def __init__(self, product: Product, media: str | None, root: str, manifests: P.Manifests | None = None):
        self.product, self.media, self.root, self.manifests = product, media, root, manifests
        self._cache: dict[str, list[np.ndarray]] = {}
        self._atoms: dict[str, tuple[np.ndarray, list[str]]] = {}

    def get(self, part: P.Part, exp) -> list[np.ndarray] | None:
        if exp.is_projector:
            atoms = self.atoms(part.files[exp.file].source) if exp.file in part.files else None
            return None if atoms is None else [atoms[0]]
        return self.tensors(exp.profile, part, [i.name for i in exp.inputs])

    def tensors(self, profile: str, part: P.Part, names, optional: bool = False) -> list[np.ndarray] | None:
        """The profile's tensors of the samples; with `optional`, None when the media folder or the
        tokenizer is not there (a projector's source encoder from an earlier run)."""
        if profile not in self._cache:
            modality = checks.PROFILE_MODALITY[profile]
            if modality == "text":
                items = TEXTS
                toks = [os.path.join(self.root, t) for t in part.tokenizer_profiles.get(profile, [])]
                if optional and not all(os.path.isfile(t) for t in toks):
                    return None
            elif optional and self.media is None:
                return None
            else:
                items, toks = media_files(self.media, modality), []
            per_item = [self.product.preprocess(profile, toks, it, names) for it in items]
            self._cache[profile] = [np.concatenate([p[k] for p in per_item]) for k in range(len(names))]
        return self._cache[profile]

    def atoms(self, expert: str | None) -> tuple[np.ndarray, list[str]] | None:
        """n(atom) of every sample item through the expert's encoder files in the root, as the bonds
        feed a projector (an item's clip rows averaged first); None when no encoder file is there."""
        if expert is None or self.manifests is None or expert not in self.manifests.parts:
            return None
        if expert not in self._atoms:
            part = self.manifests.parts[expert]
            rows, used = [], []
            for e in part.files.values():
                path = os.path.join(self.root, e.file)
                if e.profile is None or not os.path.isfile(path):
                    continue
                names = [i.name for i in checks.PROFILE_INPUTS[e.profile]]
                arrays = self.tensors(e.profile, part, names, optional=True)
                if arrays is None:
                    continue
                (out,), _ = self.product.run_onnx(path, [list(zip(names, arrays))])
                out = out.reshape(-1, e.rows_per_item, out.shape[1]).mean(1)
                rows.append(out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12))
                used.append(e.file)
            self._atoms[expert] = (np.concatenate(rows).astype(np.float32), used) if rows else None
        return self._atoms[expert]
