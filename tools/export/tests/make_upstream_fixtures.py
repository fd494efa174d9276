#!/usr/bin/python3
"""Runs UPSTREAM's own model code on the suite's seeded reduced checkpoints and writes the outputs
as fixtures (tools/export/fixtures/upstream/), which test_upstream_parity.py holds our modules and
the exported ONNX files to, without any upstream code.

    /usr/bin/python3 tools/export/tests/make_upstream_fixtures.py \\
        --imagebind-code IMAGEBIND --freebind-code FREEBIND --clap-code CLAP \\
        --torchlibrosa-code TORCHLIBROSA --internvl-code INTERNVL [--only CASES]

Each *-code is a checkout of the upstream repository: a work tree, or a git directory (a bare
clone) with an optional @COMMIT, of which the few folders upstream's models need are extracted to
a temporary folder. --freebind-code defaults to $FREEBIND_UPSTREAM_CODE. The commits used, the
checkpoints' and inputs' digests, which RoBERTa ran and every figure are recorded in
fixtures/upstream/upstream.json. The commits the documentation quotes:

    facebookresearch/ImageBind 53680b0, zehanwang01/FreeBind d0606bc, LAION-AI/CLAP 740d350
    (laion-clap 1.1.4), qiuqiangkong/torchlibrosa 1c4c236 (0.1.0), OpenGVLab/InternVL 3d78d4d

Needs the product built (its `freebind preprocess` makes the real inputs), Debian's python3-torch,
and the test tokenizers under $FREEBIND_TESTDATA. The third-party packages upstream imports (timm,
einops, transformers, librosa, …) are not installable here: tests/upstream_standins.py says what
stands in for each, and that RoBERTa (transformers) is the one stand-in that computes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.dirname(HERE)
if TOOL not in sys.path:
    sys.path.insert(0, TOOL)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests import support, upstream_cases as U, upstream_standins  # noqa: E402

import checkpoints as C  # noqa: E402
import checks  # noqa: E402
from models import random_checkpoints as RC  # noqa: E402
from product import Product  # noqa: E402

# What each upstream checkout must provide (extracted from a git directory), and what goes on sys.path.
NEEDS = {
    "imagebind": (["imagebind"], ""),
    "freebind": (["models"], None),  # loaded by path through $FREEBIND_UPSTREAM_CODE
    "clap": (["src/laion_clap"], "src/laion_clap"),
    "torchlibrosa": (["torchlibrosa"], ""),
    "internvl": (["clip_benchmark/clip_benchmark/models/internvl_huggingface"], "clip_benchmark/clip_benchmark/models"),
}
TESTDATA = os.path.dirname(support.WORK)


def log(msg: str) -> None:
    print(msg, flush=True)


def checkout(spec: str, name: str, scratch: str) -> tuple[str, str]:
    """(folder with the upstream files, commit id) for a work tree or a git directory[@commit]."""
    path, _, rev = spec.partition("@")
    git = ["git", f"--git-dir={path}"] if os.path.isfile(os.path.join(path, "HEAD")) else ["git", "-C", path]
    try:
        commit = subprocess.run(git + ["rev-parse", f"{rev or 'HEAD'}^{{commit}}"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"error: --{name}-code {spec}: not a git checkout ({e.stderr.strip()})")
    if git[1].startswith("--git-dir") or rev:
        folder = os.path.join(scratch, name)
        os.makedirs(folder)
        tar = subprocess.run(git + ["archive", commit, *NEEDS[name][0]], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=tar, check=True)
        return folder, commit
    dirty = subprocess.run(git + ["status", "--porcelain", "--", *NEEDS[name][0]], capture_output=True, text=True).stdout
    return path, commit + ("+local-changes" if dirty.strip() else "")


# ---------------------------------------------------------------------------------------------
# Upstream's forward for each checkpoint kind


def upstream_for(case: U.Case, exp, state: dict, roberta: str):
    """A function of the same torch inputs as our module, computed by upstream's code."""
    if case.checkpoint == "imagebind":
        # ImageBind's ImageBindModel (as --verify-upstream builds it), on the whole checkpoint: the
        # stream that made `exp` has already forgotten the modalities it exported before it
        from models import imagebind
        modality = os.path.splitext(os.path.basename(case.file))[0]
        return imagebind._UpstreamCache(C.StateDict(dict(state), "upstream")).encoder(modality)()
    if case.checkpoint == "imagebind-ft":
        return exp.upstream()  # FreeBind's ImageBindModel_audio / Reaction_Head_mini (as --verify-upstream)
    if case.checkpoint.startswith("clap-"):
        return clap_upstream(case, state, roberta)
    if case.checkpoint == "internvl":
        return internvl_upstream(case, state)
    raise KeyError(case.checkpoint)


_CLAP_CACHE: dict = {}


def clap_upstream(case: U.Case, state: dict, roberta: str):
    variant = case.checkpoint.split("-")[1]
    if variant not in _CLAP_CACHE:
        _CLAP_CACHE.clear()
        _CLAP_CACHE[variant] = build_clap(variant, state, roberta)
    model = _CLAP_CACHE[variant]
    fusion = variant == "general"
    if case.file.endswith("audio.onnx"):
        def audio(x: torch.Tensor) -> torch.Tensor:
            if fusion:
                # upstream's flag from its loader: the clip was over 10 s. For the product's tensors that is
                # exactly "channels 1-3 are not copies of channel 0" (docs/export.md, CLAP section).
                longer = (x[:, 1:] != x[:, 0:1]).flatten(1).any(dim=1)
                rows = [{"mel_fusion": x[i], "longer": longer[i:i + 1]} for i in range(x.shape[0])]
            else:
                rows = [{"waveform": x[i]} for i in range(x.shape[0])]
            return model.get_audio_embedding(rows)
        return audio
    return lambda ids, mask: model.get_text_embedding({"input_ids": ids, "attention_mask": mask})


def build_clap(variant: str, state: dict, roberta: str):
    """laion_clap's CLAP (clap_module.model) at the reduced sizes, loaded strictly with the checkpoint."""
    from clap_module import htsat, model as M
    shape, text = RC.REDUCED_CLAP_AUDIO[variant], RC.REDUCED_ROBERTA
    fusion = shape.fusion
    with open(os.path.join(os.path.dirname(M.__file__), "model_configs",
                           "HTSAT-tiny.json" if fusion else "HTSAT-base.json"), encoding="utf-8") as f:
        cfg = json.load(f)

    def reduced_htsat(audio_cfg, enable_fusion=False, fusion_type="None"):
        # create_htsat_model with the reduced widths/depths instead of its hard-coded tiny/base ones
        return htsat.HTSAT_Swin_Transformer(spec_size=256, patch_size=4, patch_stride=(4, 4),
                                            num_classes=audio_cfg.class_num, embed_dim=shape.embed_dim,
                                            depths=list(shape.depths), num_heads=list(shape.heads),
                                            window_size=shape.window, config=audio_cfg, enable_fusion=enable_fusion,
                                            fusion_type=fusion_type)

    M.create_htsat_model = reduced_htsat
    text_cfg = dict(cfg["text_cfg"], model_type="roberta")
    model = M.CLAP(embed_dim=shape.embed_dim * 8, audio_cfg=cfg["audio_cfg"], text_cfg=text_cfg,
                   enable_fusion=fusion, fusion_type="aff_2d" if fusion else "None", joint_embed_shape=512,
                   mlp_act="relu")
    # RobertaModel.from_pretrained('roberta-base') and the 768-wide text projection are hard-coded
    # in laion_clap: the text tower and its projection take the reduced checkpoint's sizes.
    heads = text.heads  # 64-wide, as roberta-base (the keys do not say)
    if roberta.startswith("transformers"):
        import transformers
        model.text_branch = transformers.RobertaModel(transformers.RobertaConfig(
            vocab_size=text.vocab, hidden_size=text.width, num_hidden_layers=text.layers, num_attention_heads=heads,
            intermediate_size=text.intermediate, max_position_embeddings=text.positions, type_vocab_size=text.type_vocab))
    else:
        model.text_branch = upstream_standins.RobertaStandIn(text.vocab, text.width, text.layers, heads,
                                                             text.intermediate, text.positions, text.type_vocab)
    model.text_projection = torch.nn.Sequential(torch.nn.Linear(text.width, 512), torch.nn.ReLU(),
                                                torch.nn.Linear(512, 512))
    weights = {k[len(U.CLAP_PREFIX):]: v for k, v in state.items()}
    tower = {k[len("text_branch."):]: weights.pop(k) for k in list(weights) if k.startswith("text_branch.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("text_branch.")]
    if missing or unexpected:
        raise SystemExit(f"error: laion_clap's CLAP refuses the reduced {variant} checkpoint: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}")
    if isinstance(model.text_branch, upstream_standins.RobertaStandIn):
        model.text_branch.load_transformers_keys(tower)
    else:
        # position_ids is a buffer that only some transformers versions save
        missing, unexpected = model.text_branch.load_state_dict(tower, strict=False)
        if set(missing) - {"embeddings.position_ids"} or set(unexpected) - {"embeddings.position_ids"}:
            raise SystemExit(f"error: transformers' RobertaModel refuses the reduced text tower: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]}")
    return model.eval()


def internvl_upstream(case: U.Case, state: dict):
    from internvl_huggingface.configuration_internvl import InternVLConfig
    from internvl_huggingface.modeling_internvl import InternVLModel
    model = InternVLModel(InternVLConfig(**RC.internvl_config())).eval()
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)  # float32, as --verify-upstream
    if case.file.endswith("vision.onnx"):
        return lambda pixels: model.encode_image(pixels, mode="InternVL-C")
    return lambda ids: model.encode_text(ids)


# ---------------------------------------------------------------------------------------------


def real_inputs(product: Product, case: U.Case, exp, manifests, scratch: str) -> list[np.ndarray]:
    names = [i.name for i in exp.inputs]
    part = next(p for p in manifests.parts.values() if case.file in p.files)
    toks = [os.path.join(TESTDATA, t) for t in part.tokenizer_profiles.get(case.real.profile, [])]
    arrays = []
    for item in case.real.items:
        if checks.PROFILE_MODALITY[case.real.profile] != "text":
            if item == U.LONG_CLIP:
                path = os.path.join(scratch, item)
                support.concatenate_wavs([os.path.join(support.MEDIA, f) for f in ("BBQ.wav", "toilet.wav", "train.wav")], path)
                item = path
            else:
                item = os.path.join(support.MEDIA, item)
        arrays.append(product.preprocess(case.real.profile, toks, item, names))
    return [np.concatenate([a[k] for a in arrays]) for k in range(len(names))]


def forward(fn, arrays) -> np.ndarray:
    with torch.no_grad():
        return fn(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]).float().numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in NEEDS:
        ap.add_argument(f"--{name}-code", dest=name, default=os.environ.get("FREEBIND_UPSTREAM_CODE") if name == "freebind" else None,
                        required=name != "freebind", help=f"upstream {name} checkout (work tree or git dir[@commit])")
    ap.add_argument("--only", help="comma-separated case names (the others keep their fixtures)")
    ap.add_argument("--transformers", action="store_true",
                    help="use an installed transformers for CLAP's RoBERTa instead of the stand-in")
    args = ap.parse_args(argv)
    if not args.freebind:
        ap.error("--freebind-code (or $FREEBIND_UPSTREAM_CODE) is required")
    support.require_environment()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cases = U.CASES if not args.only else [c for c in U.CASES if c.name in args.only.split(",")]
    os.makedirs(U.FOLDER, exist_ok=True)
    index = U.read_index() if os.path.isfile(U.INDEX) else {"cases": {}}
    with tempfile.TemporaryDirectory(prefix="upstream-code-") as scratch, \
            Product(None, os.path.join(support.REPO, "spaces")) as product:
        commits = {}
        for name in NEEDS:
            folder, commits[name] = checkout(getattr(args, name), name, scratch)
            if NEEDS[name][1] is not None:
                sys.path.insert(0, os.path.join(folder, NEEDS[name][1]))
            else:
                os.environ["FREEBIND_UPSTREAM_CODE"] = folder
        roberta = upstream_standins.install(args.transformers)
        manifests = support.manifests()
        states: dict[str, dict] = {}
        for case in cases:
            t0 = time.time()
            if case.checkpoint not in states:
                states.clear()  # one checkpoint alive at a time
                states[case.checkpoint] = U.CHECKPOINTS[case.checkpoint]()
            state = states[case.checkpoint]
            exp = U.our_export(case, state)
            theirs = upstream_for(case, exp, state, roberta)
            rand = U.random_inputs(case, exp)
            arrays = {"random_out": forward(theirs, rand)}
            figures = {"ours_vs_upstream_random_max_abs": checks.max_abs(checks.torch_forward(exp.module, rand),
                                                                         arrays["random_out"], case.name)}
            if case.real is not None:
                real = real_inputs(product, case, exp, manifests, scratch)
                arrays["real_out"] = forward(theirs, real)
                arrays.update({f"real_in_{i.name}": a for i, a in zip(exp.inputs, real)})
                figures["ours_vs_upstream_real_max_abs"] = checks.max_abs(checks.torch_forward(exp.module, real),
                                                                          arrays["real_out"], case.name)
            np.savez_compressed(U.fixture_path(case), **arrays)
            index["cases"][case.name] = {
                "file": case.file, "checkpoint": case.checkpoint, "checkpoint_seed": U.SEEDS[case.checkpoint],
                "checkpoint_sha256": U.digest(state), "random_seed": case.seed, "random_rows": U.RANDOM_ROWS,
                "random_inputs_sha256": U.digest(rand),
                "real": None if case.real is None else {"profile": case.real.profile, "items": list(case.real.items)},
                "output_scale": float(max(np.abs(a).max() for k, a in arrays.items() if k.endswith("_out"))),
                "measured": figures,
                "upstream": {k: commits[k] for k in (("imagebind", "freebind") if "imagebind" in case.checkpoint else
                                                     ("clap", "torchlibrosa") if "clap" in case.checkpoint else
                                                     ("internvl",))},
            }
            if case.checkpoint.startswith("clap-") and case.file.endswith("text.onnx"):
                index["cases"][case.name]["roberta"] = roberta
            log(f"{case.name}: {', '.join(f'{k} {v:.2g}' for k, v in figures.items())}  ({time.time() - t0:.1f}s, "
                f"{os.path.getsize(U.fixture_path(case)) / 1024:.0f} KiB)")
            index["cases"][case.name]["torch"] = torch.__version__
            write_index(index)  # after every case: an interrupted run keeps what it finished
            del exp, theirs
    return 0


def write_index(index: dict) -> None:
    index["generator"] = "tools/export/tests/make_upstream_fixtures.py"
    with open(U.INDEX + ".tmp", "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(U.INDEX + ".tmp", U.INDEX)


if __name__ == "__main__":
    sys.exit(main())
