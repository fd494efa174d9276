#!/usr/bin/env python3
"""Writes tests/fixtures/upstream/clap-audio.json: CLAP's audio inputs computed by laion_clap's own code.

The oracle for the C# `clap-fusion` and `clap` profiles, independent of preprocess_audio.py (which is
a twin written from the same reading as the C#). It runs, from a checkout of LAION-AI/CLAP at commit
740d350 (laion_clap 1.1.4, which FreeBind's requirements.txt pins) that is NOT part of this repository:

  * training/data.py `float32_to_int16`, `int16_to_float32` (the int16 round trip),
  * training/data.py `get_audio_features` (repeatpad, fusion chunks, torchvision Resize, crop) and
    `get_mel` (torchaudio MelSpectrogram + AmplitudeToDB), with the audio configuration read from
    clap_module/model_configs/HTSAT-tiny.json,

in the order hook.py's `get_audio_embedding_from_filelist` calls them (quoted in `features` below).
Two things are not upstream's, both documented deviations (docs/preprocessing.md):
  * `librosa.load(path, sr=48000)` is replaced by torchaudio.load, the mean of the channels (what
    librosa's to_mono does) and torchaudio's resampler (librosa's soxr is not used here);
  * upstream's random choices are made deterministic: `np.random.choice` of a third's candidates
    takes the middle one, `np.random.randint(0, n + 1)` for the crop takes n // 2.
data.py imports many training-only modules at import time (webdataset, h5py, transformers, which
downloads tokenizers); small stand-ins are installed for those, since nothing used here calls them.

Usage (Debian's python, with python3-torch, -torchaudio, -torchvision):
  git --git-dir=/work/.mirror/LAION-AI+CLAP/repo archive 740d350 src/laion_clap | tar -x -C /tmp/clap
  /usr/bin/python3 tools/reference/preprocess_audio.py --out "$FREEBIND_TESTDATA"   # the synthetic inputs
  /usr/bin/python3 tools/reference/upstream_clap_audio.py --clap /tmp/clap/src/laion_clap \
      --testdata "$FREEBIND_TESTDATA" --out tests/fixtures/upstream/clap-audio.json
"""

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import types

import numpy
import torch
import torchaudio
import torchaudio.functional as AF
import torchvision

import fixture_json

UPSTREAM_COMMIT = "740d350cb21cdd0ff968dcfd059245ab0fcec517"
SAMPLES = ["BBQ", "toilet", "train"]
SYNTHETIC = ["short_1s3_22k", "stereo_44k1", "pcm24_48k", "float_ext_3ch_16k", "pcm8_11k", "long_25s_32k"]
# What the fixture keeps of each [4, 1001, 64] mel: these frames of every chunk, all 64 bins.
FRAMES = [0, 1, 333, 667, 999, 1000]
WAVEFORM_STRIDE = 2000


def stand_ins():
    """Modules data.py imports but get_audio_features never uses."""
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class Tokenizer:
        @staticmethod
        def from_pretrained(*_args, **_kwargs):
            return None

    for name in ["h5py", "braceexpand", "pandas", "webdataset", "wget"]:
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                module(name)
    module("transformers", BertTokenizer=Tokenizer, RobertaTokenizer=Tokenizer, BartTokenizer=Tokenizer)
    package = module("clap_module", tokenize=None)
    package.__path__ = []
    package.utils = module("clap_module.utils", get_tar_path_from_dataset_name=None, dataset_split=None,
                           load_p=None, load_class_label=None)


class MiddleChoice:
    """numpy with upstream's random choices made deterministic (the documented policy)."""

    class random:
        @staticmethod
        def choice(candidates):
            candidates = list(candidates)
            return candidates[len(candidates) // 2]

        @staticmethod
        def randint(low, high):
            return low + (high - 1 - low) // 2

    def __getattr__(self, name):
        return getattr(numpy, name)


def load_upstream(clap_dir):
    stand_ins()
    path = os.path.join(clap_dir, "training", "data.py")
    spec = importlib.util.spec_from_file_location("laion_clap_training_data", path)
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    data.np = MiddleChoice()
    with open(os.path.join(clap_dir, "clap_module", "model_configs", "HTSAT-tiny.json")) as f:
        audio_cfg = json.load(f)["audio_cfg"]
    return data, audio_cfg


def load_48k(path):
    # Stands in for librosa.load(path, sr=48000): decode, mean of the channels, resample (torchaudio).
    waveform, sr = torchaudio.load(path)
    mono = waveform.mean(dim=0)
    if sr != 48000:
        mono = AF.resample(mono[None], orig_freq=sr, new_freq=48000)[0]
    return mono.numpy()


def features(data, audio_cfg, audio_waveform, fusion):
    # hook.py get_audio_embedding_from_filelist, after librosa.load:
    #     audio_waveform = int16_to_float32(float32_to_int16(audio_waveform))
    #     audio_waveform = torch.from_numpy(audio_waveform).float()
    #     temp_dict = get_audio_features(temp_dict, audio_waveform, 480000,
    #         data_truncating='fusion' if self.enable_fusion else 'rand_trunc',
    #         data_filling='repeatpad', audio_cfg=self.model_cfg['audio_cfg'], ...)
    audio_waveform = data.int16_to_float32(data.float32_to_int16(audio_waveform))
    audio_waveform = torch.from_numpy(audio_waveform).float()
    return data.get_audio_features({}, audio_waveform, 480000, data_truncating="fusion" if fusion else "rand_trunc",
                                   data_filling="repeatpad", audio_cfg=audio_cfg)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clap", required=True, help="src/laion_clap of a LAION-AI/CLAP checkout at " + UPSTREAM_COMMIT[:7])
    ap.add_argument("--testdata", required=True, help="test data root holding preprocess/audio/inputs/ (preprocess_audio.py)")
    ap.add_argument("--shared", default=os.environ.get("FREEBIND_SHARED") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data, audio_cfg = load_upstream(args.clap)

    inputs = [(n, "shared", os.path.join(args.shared, "media", "freebind-samples", n + ".wav")) for n in SAMPLES]
    inputs += [(n, "testdata", os.path.join(args.testdata, "preprocess", "audio", "inputs", n + ".wav")) for n in SYNTHETIC]
    items = []
    for name, root, path in inputs:
        signal = load_48k(path)
        music = features(data, audio_cfg, signal.copy(), fusion=False)
        general = features(data, audio_cfg, signal.copy(), fusion=True)
        wave = general["waveform"].numpy()
        assert numpy.array_equal(wave, music["waveform"].numpy()), name  # both modes crop and pad alike
        mel = general["mel_fusion"].numpy()
        assert wave.shape == (480000,) and mel.shape == (4, 1001, 64), (wave.shape, mel.shape)
        items.append({
            "name": name,
            "root": root,
            "sha256": sha256(path),
            "samples_48k": int(signal.shape[0]),
            "longer": bool(general["longer"].item()),
            "waveform_int16": [int(v) for v in numpy.rint(wave[::WAVEFORM_STRIDE].astype(numpy.float64) * 32767)],
            "mel_fusion_db": [[[round(float(v), 4) for v in mel[c, f]] for f in FRAMES] for c in range(4)],
        })
        print(f"{name}: {signal.shape[0]} samples at 48 kHz, longer={items[-1]['longer']}")

    fixture = {
        "what": "CLAP audio inputs computed by laion_clap's own get_audio_features / get_mel / int16 round trip",
        "upstream": f"LAION-AI/CLAP {UPSTREAM_COMMIT} (laion_clap 1.1.4): src/laion_clap/training/data.py, hook.py's call order",
        "generator": "tools/reference/upstream_clap_audio.py",
        "versions": {"torch": torch.__version__, "torchaudio": torchaudio.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__},
        "not_upstream": "librosa.load replaced by torchaudio.load + mean of channels + torchaudio resample; np.random.choice → middle candidate, np.random.randint(0, n + 1) → n // 2",
        "audio_cfg": audio_cfg,
        "frames": FRAMES,
        "waveform_stride": WAVEFORM_STRIDE,
        "inputs": items,
    }
    fixture_json.write(fixture, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
