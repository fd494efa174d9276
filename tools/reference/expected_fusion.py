"""Expected outputs for the C# parity tests, computed in float32 by the torch reference.

    expected_fusion.py --models DIR --out OUTDIR [--items 300]

OUTDIR/fusion/: per variant, atoms.jsonl (random, randomly scaled expert embeddings) and one
<setting>.jsonl per factor setting; settings.json indexes them with their full effective factors.
OUTDIR/embed/: model inputs for 4 items per expert and modality (inputs/), the atoms the stand-in
encoders give for them (atoms/), and each variant's final vectors (<variant>/<modality>.npy);
index.json says which ONNX input each .npy feeds.
The models in DIR must be the ones generate_models.py wrote for the seed in DIR/models.json:
every weight is checked against its ONNX file before use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import freebind_reference as R  # noqa: E402

EMBED_ITEMS = 4
# Away from every default and preset, for every bond and modality a variant has.
CUSTOM = {"internvl": {"image": 0.35, "text": 0.6}, "clap": {"audio": 0.3, "text": 0.7}}


def fmt(values: np.ndarray) -> str:
    # 9 significant digits round-trip any float32 exactly, whether parsed as float or as double.
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ValueError("non-finite value in expected output")
    return "[" + ",".join("%.9g" % v for v in values.tolist()) + "]"


# ---------------------------------------------------------------------------------------------
# Fusion (atoms in, vectors out)


def random_atoms(seed: int, variant: str, modality: str, expert: str, items: int) -> np.ndarray:
    rng = R.file_rng(seed, f"fusion/{variant}/{modality}/{expert}")
    x = rng.normal(0.0, 1.0, (items, R.EXPERT_DIMS[expert]))
    scale = np.exp(rng.uniform(np.log(0.01), np.log(100.0), (items, 1)))  # so n(·) matters
    return (x * scale).astype(np.float32)


def settings_for(cls) -> list[tuple[str, str | None, dict | None]]:
    """(setting, preset, explicit factors) triples a variant is checked with."""
    out = [("default", None, None)]
    if "clap" in cls.default_factors:
        out += [(p, p, None) for p in R.PRESETS]
    if cls.default_factors:
        out.append(("custom", None, {b: {m: CUSTOM[b][m] for m in mods} for b, mods in cls.default_factors.items()}))
    return out


def write_fusion(store: R.ModelStore, out: str, seed: int, items: int) -> int:
    index, lines = [], 0
    for name, cls in R.VARIANTS.items():
        folder = os.path.join(out, "fusion", name)
        os.makedirs(folder, exist_ok=True)
        atoms = {m: {e: torch.from_numpy(random_atoms(seed, name, m, e, items)) for e in cls.needs[m]}
                 for m in R.MODALITIES}
        with open(os.path.join(folder, "atoms.jsonl"), "w", encoding="utf-8") as f:
            for m in R.MODALITIES:
                for i in range(items):
                    experts = ",".join(f'"{e}":{fmt(a[i].numpy())}' for e, a in atoms[m].items())
                    f.write(f'{{"id":"{m}-{i}","modality":"{m}","experts":{{{experts}}}}}\n')
        for setting, preset, explicit in settings_for(cls):
            factors = R.effective_factors(name, explicit, preset)
            model = cls(store, factors)
            rel = f"{name}/{setting}.jsonl"
            with open(os.path.join(out, "fusion", rel), "w", encoding="utf-8") as f:
                for m in R.MODALITIES:
                    vectors = model.embed(m, atoms[m])
                    assert vectors.shape == (items, cls.dimension)
                    for i in range(items):
                        f.write(f'{{"id":"{m}-{i}","modality":"{m}","vector":{fmt(vectors[i])}}}\n')
                        lines += 1
            entry = {"variant": name, "setting": setting, "file": rel, "atoms": f"{name}/atoms.jsonl",
                     "dimension": cls.dimension, "factors": factors}
            if preset:
                entry["preset"] = preset
            index.append(entry)
    with open(os.path.join(out, "fusion", "settings.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
    return lines


# ---------------------------------------------------------------------------------------------
# Embedding (model inputs in, atoms and vectors out)


def _lengths(items: int, longest: int) -> list[int]:
    base = [3, 11, 30, longest]  # includes a sequence that fills the whole context (no padding)
    return [base[i % len(base)] for i in range(items)]


def model_inputs(expert: str, modality: str, items: int, seed: int) -> list[np.ndarray]:
    """Plausible model inputs, one array per ONNX input, for `items` items (clips expanded)."""
    rng = R.file_rng(seed, f"embed/{expert}/{modality}")
    if modality == "image":
        # Shared picture stream for both image experts: item i is the same picture to each.
        pic = R.file_rng(seed, "embed/pictures")
        coarse = pic.normal(0.0, 1.0, (items, 3, 7, 7))
        x = np.kron(coarse, np.ones((32, 32))) + 0.3 * pic.normal(0.0, 1.0, (items, 3, 224, 224))
        return [np.clip(x, -1.79, 2.15).astype(np.float32)]  # range of CLIP-normalised pixels
    if (expert, modality) in (("imagebind", "audio"), ("imagebind-audio-ft", "audio")):
        clips = R.encoder_spec(expert, modality)["clips"]
        env = rng.normal(0.0, 1.0, (items, 1, 1, 128, 1))
        tmod = rng.normal(0.0, 0.5, (items, clips, 1, 1, 204))
        x = env + tmod + 0.5 * rng.normal(0.0, 1.0, (items, clips, 1, 128, 204))
        return [x.reshape(items * clips, 1, 128, 204).astype(np.float32)]  # clips of an item adjacent
    if (expert, modality) == ("clap-general", "audio"):
        env = rng.normal(0.0, 15.0, (items, 1, 1, 64))
        tmod = rng.normal(0.0, 5.0, (items, 4, 1001, 1))
        x = -45.0 + env + tmod + 5.0 * rng.normal(0.0, 1.0, (items, 4, 1001, 64))
        return [np.clip(x, -100.0, 20.0).astype(np.float32)]  # log-mel in dB
    if (expert, modality) == ("clap-music", "audio"):
        t = np.arange(480000) / 48000.0
        freqs = rng.uniform(50.0, 4000.0, (items, 3, 1))
        amps = rng.uniform(0.05, 0.3, (items, 3, 1))
        x = (amps * np.sin(2 * np.pi * freqs * t)).sum(1) + 0.02 * rng.normal(0.0, 1.0, (items, 480000))
        return [np.clip(x, -1.0, 1.0).astype(np.float32)]  # 10 s at 48 kHz
    if (expert, modality) == ("imagebind", "text"):
        ids = np.zeros((items, R.CLIP_LEN), np.int64)  # CLIP pads with 0
        for i, n_tok in enumerate(_lengths(items, R.CLIP_LEN - 2)):
            ids[i, 0] = R.CLIP_SOT
            ids[i, 1:1 + n_tok] = rng.integers(256, R.CLIP_SOT, n_tok)
            ids[i, 1 + n_tok] = R.CLIP_EOT
        return [ids]
    if modality == "text" and expert in ("clap-general", "clap-music"):
        ids = np.full((items, R.ROBERTA_LEN), R.ROBERTA_PAD, np.int64)
        mask = np.zeros((items, R.ROBERTA_LEN), np.int64)
        for i, n_tok in enumerate(_lengths(items, R.ROBERTA_LEN - 2)):
            ids[i, 0] = R.ROBERTA_BOS
            ids[i, 1:1 + n_tok] = rng.integers(4, R.ROBERTA_VOCAB - 1, n_tok)
            ids[i, 1 + n_tok] = R.ROBERTA_EOS
            mask[i, :n_tok + 2] = 1
        return [ids, mask]
    if (expert, modality) == ("internvl-c", "text"):
        ids = np.full((items, R.INTERNVL_LEN), R.LLAMA_PAD, np.int64)  # upstream adds eos, pads with 0
        for i, n_tok in enumerate(_lengths(items, R.INTERNVL_LEN - 2)):
            ids[i, 0] = R.LLAMA_BOS
            ids[i, 1:1 + n_tok] = rng.integers(3, R.INTERNVL_VOCAB, n_tok)
            ids[i, 1 + n_tok] = R.LLAMA_EOS
        return [ids]
    raise KeyError(f"no input recipe for {expert}/{modality}")


def write_embed(store: R.ModelStore, out: str, seed: int) -> None:
    folder = os.path.join(out, "embed")
    for sub in ("inputs", "atoms"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    atoms: dict[tuple[str, str], np.ndarray] = {}
    index = {"items": EMBED_ITEMS, "experts": {}, "variants": {}}
    for (expert, modality), spec in R.ENCODERS.items():
        key = f"{expert}.{modality}"
        arrays = model_inputs(expert, modality, EMBED_ITEMS, seed)
        feeds = {}
        for (name, (dtype, _)), arr in zip(spec["inputs"], arrays):
            assert arr.dtype == np.dtype(dtype)
            # The first input is <expert>.<modality>.npy; further ones add their input name.
            rel = f"inputs/{key}.npy" if not feeds else f"inputs/{key}.{name}.npy"
            np.save(os.path.join(folder, rel), np.ascontiguousarray(arr))
            feeds[name] = rel
        atoms[(expert, modality)] = R.embed_atoms(store.encoder(expert, modality), spec, arrays)
        np.save(os.path.join(folder, "atoms", f"{key}.npy"), atoms[(expert, modality)])
        index["experts"][key] = {"model": spec["path"], "inputs": feeds, "output": R.ENCODER_OUTPUT,
                                 "clips": spec["clips"], "atoms": f"atoms/{key}.npy"}
    for name, cls in R.VARIANTS.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        model = cls(store)
        index["variants"][name] = {"factors": model.factors, "modalities": {}}
        for m in R.MODALITIES:
            vectors = model.embed(m, {e: atoms[(e, m)] for e in cls.needs[m]})
            if not np.isfinite(vectors).all():
                raise ValueError(f"{name}/{m}: non-finite vector")
            np.save(os.path.join(folder, name, f"{m}.npy"), vectors)
            index["variants"][name]["modalities"][m] = {"file": f"{name}/{m}.npy", "experts": list(cls.needs[m])}
    with open(os.path.join(folder, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description="Write the expected fusion and embedding outputs.")
    ap.add_argument("--models", required=True, help="folder generate_models.py wrote")
    ap.add_argument("--out", required=True)
    ap.add_argument("--items", type=int, default=300, help="fusion items per modality")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    stamp = os.path.join(args.models, "models.json")
    if not os.path.isfile(stamp):
        raise SystemExit(f"{stamp} is missing: run generate_models.py --out {args.models} first")
    with open(stamp, encoding="utf-8") as f:
        seed = json.load(f)["seed"]
    store = R.ModelStore(args.models, seed, memoize=True)
    os.makedirs(args.out, exist_ok=True)
    lines = write_fusion(store, args.out, seed, args.items)
    write_embed(store, args.out, seed)
    print(f"expected: {lines} fusion vectors, embed parity for {len(R.ENCODERS)} encoders "
          f"in {args.out} (seed {seed}); {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
