#!/usr/bin/python3
"""Python baseline for the preprocessing benchmark (bench/FreeBind.Benchmarks, `preprocess`).

Times the reference recipes of preprocess_image_text.py and preprocess_audio.py (imported, so the
timed code is the code the parity tests hold the C# side to) on one core: torch.set_num_threads(1),
and the launcher sets OMP/OpenBLAS/MKL to one thread. Inputs are held in memory as bytes, so
decoding is timed but file reading is not, as on the C# side:

  imagebind-vision, internvl-vision   PIL decode + convert('RGB') + recipe, per JPEG
  imagebind-audio                     torchaudio.load + ImageBind clips/fbank, per WAV
  clap-fusion                         torchaudio.load + mono + resample 48 kHz + int16 round trip + fusion mel
  clap                                the same up to the waveform (rand_trunc: no mel, as laion_clap)
  imagebind-text                      CLIP tokenizer, per caption

One call of a case processes every input once (3 images, 3 WAVs, or the captions × --text-repeat).
Warm-up, then the cases run round-robin until each has ≥ --seconds and ≥ 5 calls; the median call
time is reported. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import preprocess_audio as PA  # noqa: E402
import preprocess_image_text as PI  # noqa: E402

NAMES = ("BBQ", "toilet", "train")


def memoised_bpe():
    """Upstream CLIP SimpleTokenizer.bpe caches its result per word (self.cache), and so does the
    C# BytePairEncoder; the reference function has no cache, so give it upstream's."""
    plain = PI.bpe_merge
    cache: dict = {}

    def bpe(word, ranks):
        key = tuple(word)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = plain(word, ranks)
        return hit

    PI.bpe_merge = bpe


def clap_mono48k(blob: bytes) -> torch.Tensor:
    """librosa.load(sr=48000) as the reference does it, then laion_clap's int16 round trip."""
    waveform, sr = torchaudio.load(io.BytesIO(blob))
    mono = waveform.mean(dim=0)
    if sr != 48000:
        mono = AF.resample(mono[None], orig_freq=sr, new_freq=48000)[0]
    return torch.from_numpy(PA.int16_to_float32(PA.float32_to_int16(mono.numpy()))).float()


def clap_waveform(q: torch.Tensor) -> torch.Tensor:
    """laion_clap get_audio_features with data_truncating='rand_trunc' (CLAP Music): the waveform
    branch of PA.clap_features without the mel, which that mode never computes."""
    if len(q) > PA.MAX_LEN:
        idx = (len(q) - PA.MAX_LEN) // 2
        return q[idx: idx + PA.MAX_LEN]
    if len(q) < PA.MAX_LEN:
        q = q.repeat(int(PA.MAX_LEN / len(q)))
        q = torch.nn.functional.pad(q, (0, PA.MAX_LEN - len(q)), mode="constant", value=0)
    return q


def cases(media: str, vocab: str, text_repeat: int):
    jpegs = [open(os.path.join(media, n + ".jpeg"), "rb").read() for n in NAMES]
    wavs = [open(os.path.join(media, n + ".wav"), "rb").read() for n in NAMES]
    seconds = 0.0
    for blob in wavs:
        info = torchaudio.info(io.BytesIO(blob))
        seconds += info.num_frames / info.sample_rate
    memoised_bpe()
    clip = PI.ClipTokenizer(vocab)
    captions = list(PI.CAPTIONS) * text_repeat

    # The timed CLAP Music path must produce what the parity-tested reference produces.
    for blob in wavs:
        q = clap_mono48k(blob)
        if not torch.equal(clap_waveform(q), PA.clap_features(q)[0]):
            raise SystemExit("clap_waveform disagrees with preprocess_audio.clap_features")

    def image(fn):
        def run():
            for blob in jpegs:
                fn(Image.open(io.BytesIO(blob)).convert("RGB"))
        return run

    def imagebind_audio():
        for blob in wavs:
            waveform, sr = torchaudio.load(io.BytesIO(blob))
            PA.imagebind_audio(waveform, sr)

    def clap_fusion():
        for blob in wavs:
            PA.clap_features(clap_mono48k(blob))

    def clap():
        for blob in wavs:
            clap_waveform(clap_mono48k(blob))

    def text():
        for c in captions:
            clip(c)

    return [
        ("imagebind-vision", "images", len(jpegs), image(PI.imagebind_vision)),
        ("internvl-vision", "images", len(jpegs), image(PI.internvl_vision)),
        ("imagebind-audio", "audio seconds", seconds, imagebind_audio),
        ("clap-fusion", "audio seconds", seconds, clap_fusion),
        ("clap", "audio seconds", seconds, clap),
        ("imagebind-text", "texts", len(captions), text),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", default=PI.MEDIA)
    ap.add_argument("--vocab", default=PI.CLIP_VOCAB, help="bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per case")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls per case first")
    ap.add_argument("--text-repeat", type=int, default=20)
    ap.add_argument("--cases", help="comma-separated subset")
    args = ap.parse_args()
    torch.set_num_threads(1)
    todo = cases(args.media, args.vocab, args.text_repeat)
    if args.cases:
        wanted = set(args.cases.split(","))
        todo = [c for c in todo if c[0] in wanted]
    for _, _, _, run in todo:
        for _ in range(args.warmup):
            run()
    samples = [[] for _ in todo]
    spent = [0.0] * len(todo)
    while any(spent[i] < args.seconds or len(samples[i]) < 5 for i in range(len(todo))):
        for i, (_, _, _, run) in enumerate(todo):
            if spent[i] >= args.seconds and len(samples[i]) >= 5:
                continue
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            samples[i].append(dt)
            spent[i] += dt
    print(json.dumps({
        "python": sys.version.split()[0], "torch": torch.__version__, "torchaudio": torchaudio.__version__,
        "pillow": Image.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
        "results": [{"case": name, "unit": unit, "units_per_call": units, "median_s": statistics.median(s),
                     "iterations": len(s)} for (name, unit, units, _), s in zip(todo, samples)],
    }))


if __name__ == "__main__":
    main()
