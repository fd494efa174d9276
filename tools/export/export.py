#!/usr/bin/python3
"""Upstream checkpoints → a model root that `freebind spaces validate --all` accepts.

    /usr/bin/python3 tools/export/export.py --imagebind imagebind_huge.pth --freebind DIR \\
        --clap-general F --clap-music F --roberta DIR --internvl DIR --clip-bpe FILE \\
        --out MODEL_ROOT [--only PARTS]

Writes every file the space manifests name (docs/export.md), copies the tokenizers, checks every
file (contract, ONNX vs PyTorch on random and real inputs, batch 1 vs N), records it all in
MODEL_ROOT/export.json and ends with `freebind spaces validate` on every space the root now serves.
Exit code 0 when every selected part was exported and passed, 1 when something failed, 2 for a
command line that cannot be served.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import checks  # noqa: E402
import onnx_files  # noqa: E402
import parts as P  # noqa: E402
from checkpoints import CheckpointError  # noqa: E402
from inputs import RealInputs, UsageError, find_media, plan  # noqa: E402
from product import REPO, Product, ProductError  # noqa: E402
from record import Record, sha256_path  # noqa: E402

EXPORT_BATCH = 2  # rows per item; the checks run 3, so a graph that kept the export batch shows


def log(msg: str) -> None:
    print(msg, flush=True)


class Run:
    """One export into one model root."""

    def __init__(self, args, manifests: P.Manifests, product: Product, real: RealInputs):
        self.args, self.m, self.product, self.real = args, manifests, product, real
        self.root = os.path.abspath(args.out)
        self.record = Record(self.root)
        self.failures: list[str] = []

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        log("error: " + msg)

    def remove(self, rel: str) -> None:
        for p in (os.path.join(self.root, rel), os.path.join(self.root, rel) + ".data"):
            if os.path.exists(p):
                os.remove(p)
        self.record.files.pop(rel, None)

    def copy_tokenizers(self, part: P.Part) -> None:
        for rel in part.tokenizers:
            dest, name = P.TOKENIZER_SOURCES[rel]
            src = getattr(self.args, dest) if name is None else os.path.join(getattr(self.args, dest), name)
            target = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(src, target + ".tmp")
            os.replace(target + ".tmp", target)
            self.record.tokenizer(rel, src, target)
            log(f"  {rel}  copied")

    def run_part(self, part: P.Part, files: list[str]) -> None:
        sources = part.sources({k: getattr(self.args, k) for k in P.OPTION_OF})
        log(f"[{part.name}] {len(files)} files from " + ", ".join(f"{P.OPTION_OF[k]} {v}" for k, v in sources.items()))
        t0 = time.time()
        digests = {P.OPTION_OF[k]: self.record.source(P.OPTION_OF[k], v) for k, v in sources.items()}
        if time.time() - t0 > 2:
            log(f"  sha256 of the inputs: {time.time() - t0:.0f}s")
        # A part is replaced as a whole: files of an earlier export from other inputs must not survive
        # next to new ones if this run stops half-way.
        for rel in files:
            self.remove(rel)
        self.copy_tokenizers(part)
        done: set[str] = set()
        t_build = time.time()
        for exp in part.exports(vars(self.args), files):
            try:
                self.export_one(part, exp, digests, time.time() - t_build)
            except checks.UpstreamUnavailable:
                self.remove(exp.file)
                raise  # the same for every file of the part: one line
            except (checks.CheckFailed, ProductError) as e:
                self.remove(exp.file)
                self.fail(f"[{part.name}] {e}")
            finally:
                done.add(exp.file)
                del exp
                gc.collect()
                t_build = time.time()
        absent = [f for f in files if f not in done]
        if absent:
            self.fail(f"[{part.name}] the module yielded no {', '.join(absent[:4])}{' …' if len(absent) > 4 else ''}")

    def export_one(self, part: P.Part, exp, digests: dict, built: float) -> None:
        rel, seed = exp.file, self.args.seed
        if rel not in part.files:
            raise checks.CheckFailed(f"the {part.name} module yielded {rel}, which this part does not export")
        expected = part.files[rel]
        checks.check_declaration(exp, expected)
        entry = {"part": part.name, "sources": digests, "facts": exp.facts, "build_seconds": round(built, 2)}
        real = self.real.get(part, exp)
        if exp.is_projector:
            atoms = self.real.atoms(expected.source)
            entry["real_inputs"] = (f"n(atoms) of the sample media and captions through {', '.join(atoms[1])}" if atoms
                                    else f"none: no encoder file of {expected.source} in the model root")
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
        self.record.files[rel] = entry
        c = entry["checks"]
        log(f"  {rel}  {entry['bytes'] / 2**20:.1f} MiB  built {built:.1f}s exported {entry['export_seconds']:.1f}s  "
            f"max|onnx-torch| random {c['random_max_abs']:.1e}" +
            (f" real {c['real_max_abs']:.1e}" if "real_max_abs" in c else "") +
            f"  batch1 vs {checks.CHECK_ROWS} {c['batch1_vs_batchN_max_abs']:.1e}" +
            (f"  upstream {max(entry['upstream'].values()):.1e}" if "upstream" in entry else "") +
            (f"  float16: max|fp16-fp32| random {entry['fp16']['random_max_abs_vs_fp32']:.1e}, "
             f"min cosine {min(v for k, v in entry['fp16'].items() if 'cosine' in k):.6f}" if "fp16" in entry else ""))

    def to_fp16(self, exp, path: str, real) -> dict:
        """Replaces the checked float32 file by its float16 conversion, measured against it."""
        rng = np.random.default_rng(self.args.seed + 3)
        names = [i.name for i in exp.inputs]
        feeds = [list(zip(names, exp.random_inputs(rng, checks.CHECK_ROWS)))]
        if real is not None:
            feeds.append(list(zip(names, real)))
        if all(i.dtype == "float32" for i in exp.inputs):
            # silence / a black image: where float16's lost small constants show (log 0, 0/0)
            feeds.append([(i.name, np.zeros((1, *i.shape), np.float32)) for i in exp.inputs])
        o32, _ = self.product.run_onnx(path, feeds)
        t0 = time.time()
        try:
            onnx_files.convert_fp16(path, exp.float32_scopes)
        except ValueError as e:
            raise checks.CheckFailed(f"{path}: cannot be converted to float16: {e}; export without --fp16") from None
        o16, _ = self.product.run_onnx(path, feeds)
        figures = {"convert_seconds": round(time.time() - t0, 2), "bytes": onnx_files.file_bytes(path)}
        labels = ["random"] + (["real"] if real is not None else []) + (["zeros"] if len(feeds) > 1 + (real is not None) else [])
        for label, a, b in zip(labels, o16, o32):
            if np.isfinite(b).all() and not np.isfinite(a).all():
                raise checks.CheckFailed(f"{path}: the float16 file gives NaN or infinity on the {label} inputs where "
                                         f"float32 does not; export without --fp16")
            figures[f"{label}_max_abs_vs_fp32"] = checks.max_abs(a, b, f"{path}: float16 vs float32 ({label})")
            figures[f"{label}_min_cosine_vs_fp32"] = checks.min_cosine(a, b)
        worst = min(v for k, v in figures.items() if k.endswith("cosine_vs_fp32"))
        if not worst >= checks.FP16_MIN_COSINE:
            raise checks.CheckFailed(f"{path}: the float16 conversion drifts from float32 (cosine {worst:.6f} < "
                                     f"{checks.FP16_MIN_COSINE}); export without --fp16")
        return figures

    def validate(self) -> None:
        complete = sorted(s for s, need in self.m.spaces.items()
                          if all(os.path.isfile(os.path.join(self.root, f)) for f in need))
        left = sorted(set(self.m.spaces) - set(complete))
        if not complete:
            log(f"validate: no space is complete in {self.root} yet (left out: {', '.join(left)})")
            self.record.data["validate"] = {"spaces": [], "left_out": left}
            return
        ok, report = self.product.validate(self.root, complete)
        log("freebind spaces validate:\n" + "\n".join("  " + line for line in report.splitlines()))
        if left:
            log(f"spaces left out (files missing): {', '.join(left)}")
        self.record.data["validate"] = {"ok": ok, "spaces": complete, "left_out": left, "report": report}
        if not ok:
            self.fail("freebind spaces validate refused the model root (report above)")


def arguments() -> argparse.ArgumentParser:
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
    return ap


def main(argv=None) -> int:
    args = arguments().parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.allow_pickle:
        os.environ["FREEBIND_EXPORT_ALLOW_PICKLE"] = "1"
    t0 = time.time()
    try:
        manifests = P.read_manifests(args.spaces)
        runs, skipped = plan({k: getattr(args, k) for k in P.OPTION_OF}, args.only, manifests)
        needs_media = any(checks.PROFILE_MODALITY.get(e.profile) in ("image", "audio")
                          for part, files in runs for e in (part.files[f] for f in files))
        try:
            media = find_media(args.media, args.freebind)
        except UsageError:
            if needs_media or args.media:
                raise
            media = None  # projectors then check their sources' atoms of the texts only
        product = Product(args.freebind_cli, args.spaces)
    except (UsageError, ProductError, FileNotFoundError, ValueError) as e:
        log(f"error: {e}")
        return 2
    for msg in skipped:
        log("skip: " + msg)
    if args.verify_upstream and (problem := checks.upstream_problem(part.name for part, _ in runs)):
        log(f"error: {problem}")
        return 1
    os.makedirs(args.out, exist_ok=True)
    with product:
        run = Run(args, manifests, product, RealInputs(product, media, os.path.abspath(args.out), manifests))
        for part, files in runs:
            try:
                run.run_part(part, files)
            except (CheckpointError, ProductError, checks.CheckFailed) as e:
                run.fail(f"[{part.name}] {e}")
            except ModuleNotFoundError as e:
                run.fail(f"[{part.name}] needs the Python module '{e.name}', which is not installed "
                         f"(re-run with --debug to see where)")
            except Exception as e:  # noqa: BLE001 — one line per part; --debug shows where
                if args.debug:
                    raise
                run.fail(f"[{part.name}] stopped by {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                         f"(re-run with --debug for the trace)")
            run.record.data["checked_by"] = product.describe()
            run.record.save()
        run.validate()
        run.record.save()
    log(f"{'failed' if run.failures else 'done'} in {time.time() - t0:.0f}s: {len(run.record.files)} files recorded "
        f"in {run.record.path}" + (f"; {len(run.failures)} problem(s) above" if run.failures else ""))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
