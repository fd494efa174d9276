#!/usr/bin/python3
"""Stand-in encoder embeddings of the real sample media under the reference preprocessing.

    expected_standin.py --models DIR --out DIR

For every stand-in encoder (tools/reference/README.md) this feeds the sample media through the
reference preprocessing of its profile (preprocess_image_text.py / preprocess_audio.py, imported,
not repeated) and through the torch twin of the encoder (freebind_reference.py, whose weights are
checked bit for bit against the ONNX file in --models), and writes

  OUT/standin/<expert>.<modality>.npy   float32 [3, dim], rows in the order of index.json's items
                                        (ImageBind audio: the mean of the 3 clip rows, as the engine does)
  OUT/standin/index.json                items per modality, and per encoder its profile, model and file

The C# test StandInEncoderCosineTests runs the C# preprocessing and the same ONNX files through the
engine and requires cosine ≥ 0.9999 per item and encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torchaudio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import freebind_reference as R  # noqa: E402
import preprocess_audio as PA  # noqa: E402
import preprocess_image_text as PI  # noqa: E402

NAMES = ("BBQ", "toilet", "train")

# (expert, modality) → the profile its manifests name (spaces/*.json); checked against them below.
PROFILES = {
    ("imagebind", "image"): "imagebind-vision",
    ("imagebind", "audio"): "imagebind-audio",
    ("imagebind", "text"): "imagebind-text",
    ("imagebind-audio-ft", "audio"): "imagebind-audio",
    ("clap-general", "audio"): "clap-fusion",
    ("clap-general", "text"): "clap-text",
    ("clap-music", "audio"): "clap",
    ("clap-music", "text"): "clap-text",
    ("internvl-c", "image"): "internvl-vision",
    ("internvl-c", "text"): "internvl-text",
}


def check_profiles(spaces_dir: str) -> None:
    """The pairing above must be the manifests' own, or the test would compare different recipes."""
    for name in sorted(os.listdir(spaces_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(spaces_dir, name), encoding="utf-8") as f:
            manifest = json.load(f)
        for expert, e in manifest["experts"].items():
            for modality, m in e["modalities"].items():
                want = PROFILES.get((expert, modality))
                if want != m["profile"]:
                    raise SystemExit(f"{name}: {expert}/{modality} uses profile '{m['profile']}', this script assumes '{want}'")


def image_inputs(media: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {p: [] for p in PI.IMAGE_PROFILES}
    for name in NAMES:
        # As upstream and write_images: Image.open(...).convert("RGB"); the samples have no EXIF orientation.
        img = PI.open_rgb(os.path.join(media, name + ".jpeg"), exif=False)
        for profile, fn in PI.IMAGE_PROFILES.items():
            out[profile].append(fn(img))
    return out


def audio_inputs(media: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {"imagebind-audio": [], "clap-fusion": [], "clap": []}
    for name in NAMES:
        waveform, sr = torchaudio.load(os.path.join(media, name + ".wav"))
        _, clips = PA.imagebind_audio(waveform.clone(), sr)
        _, wave, fusion, _ = PA.clap_audio(waveform.clone(), sr)
        out["imagebind-audio"].append(clips.numpy().astype(np.float32))  # [3, 1, 128, 204]
        out["clap-fusion"].append(fusion.numpy().astype(np.float32))      # [1, 4, 1001, 64]
        out["clap"].append(wave.numpy().astype(np.float32))               # [1, 480000]
    return out


def text_inputs(tokenizers: str) -> dict[str, list[list[np.ndarray]]]:
    clip = PI.ClipTokenizer(os.path.join(tokenizers, "clip", "bpe_simple_vocab_16e6.txt.gz"))
    roberta = PI.RobertaTokenizer(os.path.join(tokenizers, "roberta", "vocab.json"),
                                  os.path.join(tokenizers, "roberta", "merges.txt"))
    internvl = PI.InternVLTokenizer(os.path.join(tokenizers, "internvl", "tokenizer.model"))
    out: dict[str, list[list[np.ndarray]]] = {"imagebind-text": [], "clap-text": [], "internvl-text": []}
    for caption in PI.CAPTIONS:
        out["imagebind-text"].append([np.array([clip(caption)], dtype=np.int64)])
        ids, mask = roberta(caption)
        out["clap-text"].append([np.array([ids], dtype=np.int64), np.array([mask], dtype=np.int64)])
        out["internvl-text"].append([np.array([internvl(caption)], dtype=np.int64)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="folder generate_models.py wrote")
    ap.add_argument("--out", required=True, help="test data root; writes OUT/standin/")
    ap.add_argument("--media", default=PI.MEDIA, help="folder with BBQ/toilet/train .jpeg and .wav")
    ap.add_argument("--spaces", default=os.path.join(HERE, "..", "..", "spaces"))
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if PI.regex is None:
        raise SystemExit("python3-regex is required (apt-get install python3-regex)")
    stamp = os.path.join(args.models, "models.json")
    if not os.path.isfile(stamp):
        raise SystemExit(f"{stamp} is missing: run generate_models.py --out {args.models} first")
    with open(stamp, encoding="utf-8") as f:
        seed = json.load(f)["seed"]
    check_profiles(args.spaces)
    for name in NAMES:
        for ext in (".jpeg", ".wav"):
            if not os.path.isfile(os.path.join(args.media, name + ext)):
                raise SystemExit(f"missing sample {os.path.join(args.media, name + ext)} (set FREEBIND_SHARED or --media)")

    # Per profile: one list of model inputs per item (every profile's inputs, in ONNX input order).
    per_item: dict[str, list[list[np.ndarray]]] = {}
    for profile, arrays in {**image_inputs(args.media), **audio_inputs(args.media)}.items():
        per_item[profile] = [[a] for a in arrays]
    per_item.update(text_inputs(os.path.join(args.models, "tokenizers")))

    store = R.ModelStore(args.models, seed)  # checks every encoder's weights against its .onnx file
    folder = os.path.join(args.out, "standin")
    os.makedirs(folder, exist_ok=True)
    index = {"items": {"image": [n + ".jpeg" for n in NAMES], "audio": [n + ".wav" for n in NAMES],
                       "text": list(PI.CAPTIONS)},
             "seed": seed, "encoders": {}}
    for (expert, modality), spec in R.ENCODERS.items():
        profile = PROFILES[(expert, modality)]
        items = per_item[profile]
        # Batch the three items: concatenate each ONNX input along the leading (rows) axis.
        inputs = [np.ascontiguousarray(np.concatenate([item[k] for item in items], axis=0))
                  for k in range(len(spec["inputs"]))]
        for (name, (dtype, shape)), arr in zip(spec["inputs"], inputs):
            if arr.dtype != np.dtype(dtype) or list(arr.shape[1:]) != list(shape[1:]):
                raise SystemExit(f"{expert}/{modality}: input {name} is {arr.dtype} {arr.shape}, the encoder wants {dtype} {shape}")
        atoms = R.embed_atoms(store.encoder(expert, modality), spec, inputs)
        if atoms.shape != (len(NAMES), spec["dim"]) or not np.isfinite(atoms).all():
            raise SystemExit(f"{expert}/{modality}: bad embeddings {atoms.shape}")
        key = f"{expert}.{modality}"
        np.save(os.path.join(folder, key + ".npy"), atoms)
        index["encoders"][key] = {"profile": profile, "model": spec["path"], "file": key + ".npy",
                                  "dimension": spec["dim"], "clips": spec["clips"]}
        print(f"{key:24s} {profile:17s} {atoms.shape}")
    with open(os.path.join(folder, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
    print(f"wrote {folder} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
