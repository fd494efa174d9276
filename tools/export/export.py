#!/usr/bin/python3
"""Upstream checkpoints → a model root that `freebind spaces validate --all` accepts.

    /usr/bin/python3 tools/export/export.py --imagebind imagebind_huge.pth --freebind DIR \\
        --clap-general F --clap-music F --roberta DIR --internvl DIR --clip-bpe FILE \\
        --out MODEL_ROOT [--only PARTS]

Writes every file the space manifests name (docs/export.md), copies the tokenizers, checks every
file (contract, ONNX vs PyTorch on random and real inputs, batch 1 vs N), records it all in
MODEL_ROOT/export.json and ends with `freebind spaces validate` on every space the root now serves.
Exit code 0 only when every selected part was exported and passed.
"""

from __future__ import annotations

import argparse
import gc
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import checks  # noqa: E402
import onnx_files  # noqa: E402
import parts as P  # noqa: E402
from checkpoints import CheckpointError  # noqa: E402
from product import REPO, Product, ProductError  # noqa: E402

EXPORT_BATCH = 2
TEXTS = ["an audio of barbeque", "an audio of toilet", "an audio of train",
         "A long caption keeps going well past the context of every text encoder, so that truncation, the end "
         "token and padding are all exercised by the real-input check: " + "birds sing near a busy road, " * 12]


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_path(path: str) -> str:
    """SHA-256 of a file, or of a folder as `sha256(name\\0digest\\n …)` over its files in name order."""
    if os.path.isdir(path):
        h = hashlib.sha256()
        for f in sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(p)):
            h.update(f"{os.path.relpath(f, path)}\0{sha256_path(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_version() -> str:
    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(HERE, "**", "*.py"), recursive=True)):
        h.update(os.path.relpath(f, HERE).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit}+{h.hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------
# Inputs


class UsageError(Exception):
    pass


def find_media(args) -> str | None:
    candidates = [args.media, os.environ.get("FREEBIND_MEDIA")]
    if args.freebind:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(args.freebind.rstrip("/"))), "assets"))
    shared = os.environ.get("FREEBIND_SHARED") or os.path.join(REPO, "..", "shared")  # the test machines' samples
    candidates.append(os.path.join(shared, "media", "freebind-samples"))
    for c in candidates:
        if c and os.path.isdir(c) and media_files(c, "image") and media_files(c, "audio"):
            return os.path.abspath(c)
    if args.media:
        raise UsageError(f"--media {args.media}: no images (.jpg/.jpeg/.png) and audio (.wav/.flac/.mp3) in it")
    return None


def media_files(folder: str, kind: str) -> list[str]:
    ext = (".jpg", ".jpeg", ".png") if kind == "image" else (".wav", ".flac", ".mp3", ".ogg")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(ext))[:3]


def input_problem(dest: str, value: str) -> str | None:
    """Why a given input cannot be used (None when it can)."""
    opt = P.OPTION_OF[dest]
    if not os.path.exists(value):
        return f"{opt} {value}: no such file or folder"
    folder_inputs = {"freebind", "roberta", "internvl"}
    if dest in folder_inputs and not os.path.isdir(value):
        return f"{opt} {value}: expected a folder"
    if dest not in folder_inputs and not os.path.isfile(value):
        return f"{opt} {value}: expected a file"
    if dest == "roberta":
        absent = [f for f in ("vocab.json", "merges.txt") if not os.path.isfile(os.path.join(value, f))]
        if absent:
            return f"{opt} {value}: no {' or '.join(absent)} (they come from the roberta-base tokenizer)"
    if dest == "internvl" and not os.path.isfile(os.path.join(value, "tokenizer.model")):
        return f"{opt} {value}: no tokenizer.model (is this the InternVL-14B-224px folder?)"
    return None


def plan(args, manifests: P.Manifests) -> tuple[list[tuple[P.Part, list[str]]], list[str]]:
    """(part, files to export) for each part that can run, and the messages for what cannot."""
    given = {k: getattr(args, k) for k in P.OPTION_OF}
    selected = list(manifests.parts)
    if args.only:
        selected = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in selected if s not in manifests.parts]
        if unknown:
            raise UsageError(f"--only {','.join(unknown)}: unknown part; parts are {', '.join(manifests.parts)}")
    runs, skipped = [], []
    for name in selected:
        part = manifests.parts[name]
        missing = [i for i in part.inputs if not given.get(i)]
        for i in part.inputs:
            if given.get(i) and (problem := input_problem(i, given[i])):
                raise UsageError(problem)
        files = sorted(part.files)
        if not missing and name == P.FT_EXPERT and not P.ft_audio_file(given["freebind"]):
            missing = [f"{' or '.join(P.FT_AUDIO_NAMES)} in --freebind"]
        if not missing and name == "projectors":
            absent = [f for f in files if not os.path.isfile(P.projector_source(given["freebind"], f))]
            if absent:
                sets = sorted({f.split("/")[0] for f in absent})
                skipped.append(f"[projectors] --freebind lacks {', '.join(sets)} (e.g. "
                               f"{P.projector_source(given['freebind'], absent[0])}): spaces left out: "
                               f"{', '.join(manifests.spaces_needing(absent))}")
                files = [f for f in files if f not in absent]
        if missing:
            what = ", ".join(P.OPTION_OF.get(m, m) for m in missing)
            msg = (f"[{name}] {what} not given: skipping {len(part.files) + len(part.tokenizers)} files; spaces left out: "
                   f"{', '.join(manifests.spaces_needing(list(part.files) + part.tokenizers))}")
            if args.only:
                raise UsageError(msg)
            skipped.append(msg)
            continue
        runs.append((part, files))
    return runs, skipped


# ---------------------------------------------------------------------------------------------
# Export


class Run:
    def __init__(self, args, manifests: P.Manifests):
        self.args = args
        self.m = manifests
        self.root = os.path.abspath(args.out)
        self.record_path = os.path.join(self.root, "export.json")
        self.record = self._load_record()
        self.product: Product | None = None
        self.media: str | None = None
        self.real_cache: dict[str, list[np.ndarray]] = {}
        self.failures: list[str] = []
        self.source_digests: dict[str, str] = {}

    def _load_record(self) -> dict:
        if os.path.isfile(self.record_path):
            with open(self.record_path, encoding="utf-8") as f:
                return json.load(f)
        return {"files": {}, "tokenizers": {}, "sources": {}}

    def save_record(self) -> None:
        r = self.record
        r["format"] = 1
        r["tool"] = {"version": tool_version(), "command": sys.argv}
        r["libraries"] = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                          "numpy": np.__version__, "opset": onnx_files.OPSET}
        tmp = self.record_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1, sort_keys=True)
        os.replace(tmp, self.record_path)

    def digest(self, dest: str, path: str) -> str:
        key = os.path.abspath(path)
        if key not in self.source_digests:
            t0 = time.time()
            self.source_digests[key] = sha256_path(path)
            self.record["sources"][P.OPTION_OF.get(dest, dest)] = {"path": key, "sha256": self.source_digests[key]}
            if time.time() - t0 > 2:
                log(f"  sha256 {os.path.basename(path.rstrip('/'))}: {time.time() - t0:.0f}s")
        return self.source_digests[key]

    def real_inputs(self, part: P.Part, exp) -> list[np.ndarray] | None:
        if exp.is_projector:
            return None
        if exp.profile in self.real_cache:
            return self.real_cache[exp.profile]
        modality = checks.PROFILE_MODALITY[exp.profile]
        if modality == "text":
            items = TEXTS
            toks = [os.path.join(self.root, t) for t in part.tokenizer_profiles.get(exp.profile, [])]
        else:
            if self.media is None:
                raise UsageError("the real-input check needs sample media: pass --media DIR (3 images and 3 audio "
                                 "files, e.g. FreeBind's assets/ folder)")
            items, toks = media_files(self.media, modality), []
        names = [i.name for i in exp.inputs]
        per_item = [self.product.preprocess(exp.profile, toks, it, names) for it in items]
        arrays = [np.concatenate([p[k] for p in per_item]) for k in range(len(names))]
        self.real_cache[exp.profile] = arrays
        return arrays

    def copy_tokenizers(self, part: P.Part) -> None:
        for rel in part.tokenizers:
            dest, name = P.TOKENIZER_SOURCES[rel]
            src = getattr(self.args, dest) if name is None else os.path.join(getattr(self.args, dest), name)
            target = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(src, target + ".tmp")
            os.replace(target + ".tmp", target)
            self.record["tokenizers"][rel] = {"source": os.path.abspath(src), "sha256": sha256_path(target)}
            log(f"  {rel}  copied")

    def remove(self, rel: str) -> None:
        for p in (os.path.join(self.root, rel), os.path.join(self.root, rel) + ".data"):
            if os.path.exists(p):
                os.remove(p)
        self.record["files"].pop(rel, None)

    def run_part(self, part: P.Part, files: list[str]) -> None:
        sources = part.sources({k: getattr(self.args, k) for k in P.OPTION_OF})
        log(f"[{part.name}] {len(files)} files from " + ", ".join(f"{P.OPTION_OF[k]} {v}" for k, v in sources.items()))
        digests = {P.OPTION_OF[k]: self.digest(k, v) for k, v in sources.items()}
        self.copy_tokenizers(part)
        done: set[str] = set()
        stream = part.exports(vars(self.args), files)
        t_build = time.time()
        for exp in stream:
            rel = exp.file
            try:
                if rel not in files:
                    raise checks.CheckFailed(f"the {part.name} module yielded {rel}, which this part does not export")
                expected = part.files[rel]
                checks.check_declaration(exp, expected)
                built = time.time() - t_build
                seed = self.args.seed
                entry = {"part": part.name, "sources": digests, "facts": exp.facts, "build_seconds": round(built, 2)}
                real = self.real_inputs(part, exp)
                if self.args.verify_upstream:
                    entry["upstream"] = checks.compare_upstream(exp, seed=seed, real=real)
                entry.update(onnx_files.write(exp, self.root, batch=EXPORT_BATCH * expected.rows_per_item, seed=seed))
                path = os.path.join(self.root, rel)
                entry["contract"] = checks.check_file(path, exp, expected)
                t0 = time.time()
                entry["checks"] = checks.compare(path, exp, self.product, seed=seed, real=real)
                entry["check_seconds"] = round(time.time() - t0, 2)
                if self.args.fp16 and not exp.is_projector:
                    entry["fp16"] = self.to_fp16(exp, path, real)
                entry["sha256"] = sha256_path(path)
                if os.path.exists(path + ".data"):
                    entry["data_sha256"] = sha256_path(path + ".data")
                self.record["files"][rel] = entry
                done.add(rel)
                c = entry["checks"]
                log(f"  {rel}  {entry['bytes'] / 2**20:.1f} MiB  built {built:.1f}s exported {entry['export_seconds']:.1f}s  "
                    f"max|onnx-torch| random {c['random_max_abs']:.1e}" +
                    (f" real {c['real_max_abs']:.1e}" if "real_max_abs" in c else "") +
                    f"  batch1 vs {checks.CHECK_ROWS} {c['batch1_vs_batchN_max_abs']:.1e}" +
                    (f"  upstream {max(entry['upstream'].values()):.1e}" if "upstream" in entry else "") +
                    (f"  float16: max|fp16-fp32| random {entry['fp16']['random_max_abs_vs_fp32']:.1e}, "
                     f"min cosine {min(v for k, v in entry['fp16'].items() if 'cosine' in k):.6f}" if "fp16" in entry else ""))
            except (checks.CheckFailed, ProductError) as e:
                self.remove(rel)
                self.fail(f"[{part.name}] {e}")
                done.add(rel)
            finally:
                del exp
                gc.collect()
                t_build = time.time()
        absent = [f for f in files if f not in done]
        if absent:
            self.fail(f"[{part.name}] the module yielded no {', '.join(absent[:4])}{' …' if len(absent) > 4 else ''}")

    def to_fp16(self, exp, path: str, real) -> dict:
        """Replaces the checked float32 file by its float16 conversion, measured against it."""
        rng = np.random.default_rng(self.args.seed + 3)
        names = [i.name for i in exp.inputs]
        feeds = [list(zip(names, exp.random_inputs(rng, checks.CHECK_ROWS)))]
        if real is not None:
            feeds.append(list(zip(names, real)))
        o32, _ = self.product.run_onnx(path, feeds)
        t0 = time.time()
        onnx_files.convert_fp16(path, exp.float32_scopes)
        o16, _ = self.product.run_onnx(path, feeds)
        figures = {"convert_seconds": round(time.time() - t0, 2), "bytes": onnx_files.file_bytes(path)}
        for label, a, b in zip(("random", "real"), o16, o32):
            figures[f"{label}_max_abs_vs_fp32"] = checks.max_abs(a, b, f"{path}: float16 vs float32 ({label})")
            figures[f"{label}_min_cosine_vs_fp32"] = checks.min_cosine(a, b)
        worst = min(v for k, v in figures.items() if k.endswith("cosine_vs_fp32"))
        if not worst >= checks.FP16_MIN_COSINE:
            raise checks.CheckFailed(f"{path}: the float16 conversion drifts from float32 (cosine {worst:.6f} < "
                                     f"{checks.FP16_MIN_COSINE}); export without --fp16")
        return figures

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        log("error: " + msg)

    def validate(self) -> None:
        complete = [s for s, need in self.m.spaces.items() if all(os.path.isfile(os.path.join(self.root, f)) for f in need)]
        left = sorted(set(self.m.spaces) - set(complete))
        if not complete:
            log(f"validate: no space is complete in {self.root} yet (left out: {', '.join(left)})")
            self.record["validate"] = {"spaces": [], "left_out": left}
            return
        ok, report = self.product.validate(self.root, sorted(complete))
        log("freebind spaces validate:\n" + "\n".join("  " + l for l in report.splitlines()))
        if left:
            log(f"spaces left out (files missing): {', '.join(left)}")
        self.record["validate"] = {"ok": ok, "spaces": sorted(complete), "left_out": left, "report": report}
        if not ok:
            self.fail("freebind spaces validate refused the model root (report above)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Export upstream checkpoints to a FreeBind.Pipeline model root.")
    ap.add_argument("--imagebind", help="imagebind_huge.pth")
    ap.add_argument("--freebind", help="FreeBind's checkpoints/ folder: projector sets and the fine-tuned audio file")
    ap.add_argument("--clap-general", dest="clap_general", help="LAION CLAP 630k-fusion-best.pt (HTSAT-tiny, fusion)")
    ap.add_argument("--clap-music", dest="clap_music", help="LAION CLAP music_speech_audioset_epoch_15_esc_89.98.pt (HTSAT-base)")
    ap.add_argument("--roberta", help="folder with roberta-base's vocab.json and merges.txt")
    ap.add_argument("--internvl", help="the Hugging Face folder InternVL-14B-224px")
    ap.add_argument("--clip-bpe", dest="clip_bpe", help="bpe_simple_vocab_16e6.txt.gz (ImageBind's CLIP BPE vocabulary)")
    ap.add_argument("--out", required=True, help="the model root to write (created; other files in it are kept)")
    ap.add_argument("--only", help="comma-separated parts: imagebind, imagebind-audio-ft, projectors, clap-general, clap-music, internvl-c")
    ap.add_argument("--spaces", default=os.path.join(REPO, "spaces"), help="folder of space manifests (default: the repository's)")
    ap.add_argument("--media", help="sample media for the real-input check (default: FreeBind's assets/ beside --freebind)")
    ap.add_argument("--freebind-cli", dest="freebind_cli", help="how to run the product's CLI (default: dotnet src/Consumers/bin/Release/net10.0/freebind.dll)")
    ap.add_argument("--verify-upstream", dest="verify_upstream", action="store_true",
                    help="also compare against upstream's own PyTorch forward (needs the upstream packages)")
    ap.add_argument("--fp16", action="store_true",
                    help="write the encoders with float16 weights and arithmetic (float32 inputs/outputs), for GPUs; "
                         "each is checked in float32 first, then measured against it")
    ap.add_argument("--allow-pickle", dest="allow_pickle", action="store_true",
                    help="read checkpoints that store Python objects besides tensors (only files you trust)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random check inputs")
    ap.add_argument("--debug", action="store_true", help="let unexpected errors end with their Python trace")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.allow_pickle:
        os.environ["FREEBIND_EXPORT_ALLOW_PICKLE"] = "1"
    t0 = time.time()
    run = None
    try:
        manifests = P.read_manifests(args.spaces)
        runs, skipped = plan(args, manifests)
        for msg in skipped:
            log("skip: " + msg)
        os.makedirs(args.out, exist_ok=True)
        run = Run(args, manifests)
        run.product = Product(args.freebind_cli, args.spaces)
        if any(not all(e.profile is None for e in p.files.values()) for p, _ in runs):
            run.media = find_media(args)
        for part, files in runs:
            try:
                run.run_part(part, files)
            except (CheckpointError, ProductError, checks.CheckFailed) as e:
                run.fail(f"[{part.name}] {e}")
            except ModuleNotFoundError as e:
                run.fail(f"[{part.name}] the architecture module is not available ({e.name}); this part cannot be exported yet")
            except Exception as e:  # noqa: BLE001 — one line per part; --debug shows where
                if args.debug:
                    raise
                run.fail(f"[{part.name}] stopped by {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                         f"(re-run with --debug for the trace)")
            run.save_record()
        run.validate()
        run.save_record()
    except (UsageError, ProductError, FileNotFoundError, ValueError) as e:
        log(f"error: {e}")
        return 2
    finally:
        if run is not None and run.product is not None:
            run.product.close()
    status = "failed" if run.failures else "done"
    log(f"{status} in {time.time() - t0:.0f}s: {len(run.record['files'])} files recorded in {run.record_path}" +
        (f"; {len(run.failures)} problem(s) above" if run.failures else ""))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
