#!/usr/bin/python3
"""Reference audio preprocessing for the C# parity tests.

Runs the upstream recipes with Debian's torch 1.13 / torchaudio 0.13 (the versions FreeBind used):
  * ImageBind ``data.load_and_transform_audio_data`` (torchaudio.load, torchaudio resample to 16 kHz,
    pytorchvideo ConstantClipsPerVideoSampler(2 s, 3 clips) at the commit ImageBind pins (see
    PYTORCHVIDEO_COMMIT: clips at 0, (D-2)/2, D-2), ``waveform2melspec`` with Kaldi fbank,
    pad/cut to 204 frames, Normalize(-4.268, 9.138));
  * laion_clap ``get_audio_embedding_from_filelist`` + ``get_audio_features`` (mono, 48 kHz, int16
    round trip, repeatpad, MelSpectrogram + AmplitudeToDB for the fusion model), with the random
    choices replaced by the deterministic policy the C# side documents (docs/preprocessing.md).

Writes DIR/preprocess/audio/: the WAV inputs it synthesises (inputs/), compressed-codec fixtures
(codecs/), and per input NAME the expected tensors as .npy:
  NAME.wave16k.npy   [C, N16]        every channel resampled to 16 kHz
  NAME.imagebind.npy [3, 1, 128, 204] ImageBind audio item
  NAME.wave48k.npy   [N48]           mono mix resampled to 48 kHz (before int16 quantisation)
  NAME.clap.npy      [1, 480000]     CLAP waveform input
  NAME.clap_fusion.npy [1, 4, 1001, 64] CLAP fusion mel input
  NAME.clap_fusion_f64.npy  the same mel computed in float64 from the same quantised signal
plus manifest.json listing the inputs.

Usage: /usr/bin/python3 tools/reference/preprocess_audio.py --out .work/testdata
"""
import argparse
import ctypes
import ctypes.util
import json
import math
import os
import struct
import sys
from fractions import Fraction

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF
import torchvision

SAMPLES = ["BBQ.wav", "toilet.wav", "train.wav"]

# ---------------------------------------------------------------- ImageBind


# ImageBind's requirements pin pytorchvideo at git commit 28fe037d212663c6a24f373b94cc5d478c8c1a1d
# (2023-04-14; 6cdc929315aab1b5674b6dcf73b16ec99147735f since ImageBind's 2025-02-25 update, same
# sampler). Both contain 9368f308d4a4619a76554cbef15b6b85ca6d0f88 (2022-04-28, "we currently ignore
# the last portion of video"), which divides the spare time by clips_per_video - 1, not by
# clips_per_video as the registry release 0.1.5 (January 2022) still does. FreeBind installs
# ImageBind from its repository, so its pytorchvideo is the pinned commit (which also reports
# itself as 0.1.5, the version FreeBind's requirements list).
PYTORCHVIDEO_COMMIT = "28fe037d212663c6a24f373b94cc5d478c8c1a1d"


class ConstantClipsPerVideoSampler:
    """pytorchvideo.data.clip_sampling.ConstantClipsPerVideoSampler at PYTORCHVIDEO_COMMIT, read from
    that source: clip k starts at k * max(D - clip, 0) / max(n - 1, 1) in exact Fractions of the float
    duration; the call that reaches n clips, or whose next start would pass the last possible start,
    reports the last clip and resets the sampler."""

    def __init__(self, clip_duration, clips_per_video, augs_per_clip=1):
        self.clip_duration = Fraction(clip_duration)
        self.clips_per_video = clips_per_video
        self.augs_per_clip = augs_per_clip
        self.clip_index = 0
        self.aug_index = 0

    def __call__(self, last_clip_end_time, video_duration, annotation):
        max_start = Fraction(max(video_duration - self.clip_duration, 0))
        step = Fraction(max_start, max(self.clips_per_video - 1, 1))
        start = step * self.clip_index
        clip_index, aug_index = self.clip_index, self.aug_index
        self.aug_index += 1
        if self.aug_index >= self.augs_per_clip:
            self.clip_index += 1
            self.aug_index = 0
        last = self.clip_index >= self.clips_per_video or step * self.clip_index > max_start
        if last:
            self.clip_index = self.aug_index = 0
        return start, start + self.clip_duration, clip_index, aug_index, last


def clip_timepoints(sampler, duration):
    """ImageBind data.get_clip_timepoints: call the sampler until it reports the last clip."""
    points, last, end = [], False, 0.0
    while not last:
        start, end, _, _, last = sampler(end, duration, annotation=None)
        points.append((start, end))
    return points


def waveform2melspec(waveform, sample_rate, num_mel_bins, target_length):
    # In place on a view, as upstream: overlapping clips see earlier clips' mean removal.
    waveform -= waveform.mean()
    fbank = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0, frame_length=25, frame_shift=10)
    fbank = fbank.transpose(0, 1)
    p = target_length - fbank.size(1)
    if p > 0:
        fbank = torch.nn.functional.pad(fbank, (0, p), mode="constant", value=0)
    elif p < 0:
        fbank = fbank[:, 0:target_length]
    return fbank.unsqueeze(0)


def imagebind_audio(waveform, sr):
    """waveform [C, N] float32 as torchaudio.load returns it."""
    target_sr = 16000
    if sr != target_sr:
        waveform = AF.resample(waveform, orig_freq=sr, new_freq=target_sr)
    resampled = waveform.clone()
    clips = []
    sampler = ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=3)
    for start, end in clip_timepoints(sampler, waveform.size(1) / target_sr):
        clip = waveform[:, int(start * target_sr): int(end * target_sr)]
        clips.append(waveform2melspec(clip, target_sr, 128, 204))
    clips = [(c - (-4.268)) / 9.138 for c in clips]
    return resampled, torch.stack(clips, dim=0)


# ---------------------------------------------------------------- CLAP

MAX_LEN = 480000
AUDIO_CFG = dict(sample_rate=48000, window_size=1024, hop_size=480, mel_bins=64, fmin=50, fmax=14000)


def get_mel(audio):
    mel_tf = torchaudio.transforms.MelSpectrogram(
        sample_rate=AUDIO_CFG["sample_rate"], n_fft=AUDIO_CFG["window_size"], win_length=AUDIO_CFG["window_size"],
        hop_length=AUDIO_CFG["hop_size"], center=True, pad_mode="reflect", power=2.0, norm=None, onesided=True,
        n_mels=AUDIO_CFG["mel_bins"], f_min=AUDIO_CFG["fmin"], f_max=AUDIO_CFG["fmax"])
    mel = torchaudio.transforms.AmplitudeToDB(top_db=None)(mel_tf(audio))
    return mel.T


def middle(values):
    # Deterministic stand-in for np.random.choice(range): the middle element.
    values = list(values)
    return values[len(values) // 2]


def clap_features(audio):
    """laion_clap get_audio_features(fusion / rand_trunc, repeatpad) with deterministic choices."""
    if len(audio) > MAX_LEN:
        mel = get_mel(audio)
        chunk_frames = MAX_LEN // AUDIO_CFG["hop_size"] + 1
        total_frames = mel.shape[0]
        if chunk_frames == total_frames:
            fusion = torch.stack([mel, mel, mel, mel], dim=0)
        else:
            ranges = np.array_split(list(range(0, total_frames - chunk_frames + 1)), 3)
            if len(ranges[1]) == 0:
                ranges[1] = [0]
            if len(ranges[2]) == 0:
                ranges[2] = [0]
            front, mid, back = middle(ranges[0]), middle(ranges[1]), middle(ranges[2])
            shrink = torchvision.transforms.Resize(size=[chunk_frames, AUDIO_CFG["mel_bins"]])(mel[None])[0]
            fusion = torch.stack([shrink, mel[front:front + chunk_frames], mel[mid:mid + chunk_frames],
                                  mel[back:back + chunk_frames]], dim=0)
        overflow = len(audio) - MAX_LEN
        idx = overflow // 2  # centre crop instead of np.random.randint(0, overflow + 1)
        audio = audio[idx: idx + MAX_LEN]
    else:
        if len(audio) < MAX_LEN:
            n_repeat = int(MAX_LEN / len(audio))
            audio = audio.repeat(n_repeat)
            audio = torch.nn.functional.pad(audio, (0, MAX_LEN - len(audio)), mode="constant", value=0)
        mel = get_mel(audio)
        fusion = torch.stack([mel, mel, mel, mel], dim=0)
    return audio, fusion


def float32_to_int16(x):
    x = np.clip(x, a_min=-1., a_max=1.)
    return (x * 32767.).astype(np.int16)


def int16_to_float32(x):
    return (x / 32767.0).astype(np.float32)


def clap_audio(waveform, sr):
    # librosa.load(sr=48000): mono = mean of channels, then resample (torchaudio here, see docs).
    mono = waveform.mean(dim=0)
    if sr != 48000:
        mono = AF.resample(mono[None], orig_freq=sr, new_freq=48000)[0]
    q = torch.from_numpy(int16_to_float32(float32_to_int16(mono.numpy()))).float()
    wave, fusion = clap_features(q)
    # The same mel in float64: torch's float32 STFT rounding moves quiet bins by up to a few 0.01 dB,
    # so the C# mel (double) is gated against this and only reported against the float32 one.
    torch.set_default_dtype(torch.float64)
    try:
        _, fusion64 = clap_features(q.double())
    finally:
        torch.set_default_dtype(torch.float32)
    return mono, wave[None], fusion[None], fusion64[None]


# ---------------------------------------------------------------- synthetic inputs


def write_wav(path, data, sr, kind, extensible=False):
    """data [C, N] float64 in [-1, 1]; kind: u8, s16, s24, s32, f32, f64."""
    channels, frames = data.shape
    inter = data.T.reshape(-1)
    if kind == "u8":
        raw = np.clip(np.round(inter * 128 + 128), 0, 255).astype(np.uint8).tobytes(); bits, tag = 8, 1
    elif kind == "s16":
        raw = np.clip(np.round(inter * 32768), -32768, 32767).astype("<i2").tobytes(); bits, tag = 16, 1
    elif kind == "s24":
        v = np.clip(np.round(inter * 8388608), -8388608, 8388607).astype("<i4")
        raw = np.frombuffer(v.tobytes(), np.uint8).reshape(-1, 4)[:, :3].tobytes(); bits, tag = 24, 1
    elif kind == "s32":
        raw = np.clip(np.round(inter * 2147483648.0), -2147483648, 2147483647).astype("<i4").tobytes(); bits, tag = 32, 1
    elif kind == "f32":
        raw = inter.astype("<f4").tobytes(); bits, tag = 32, 3
    elif kind == "f64":
        raw = inter.astype("<f8").tobytes(); bits, tag = 64, 3
    else:
        raise ValueError(kind)
    block = channels * bits // 8
    if extensible:
        sub = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, sr, sr * block, block, bits, 22, bits, (1 << channels) - 1) + sub
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd-sized chunk with pad byte
    body += b"data" + struct.pack("<I", len(raw)) + raw + (b"\0" if len(raw) % 2 else b"")
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def tone(sr, seconds, channels, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * seconds))) / sr
    out = []
    for c in range(channels):
        f0 = 220.0 * (c + 1)
        x = 0.4 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 3100.0 * t * (1 + 0.1 * t))
        x += 0.05 * rng.standard_normal(t.size)
        x *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t + c)
        out.append(x)
    return np.clip(np.stack(out), -0.99, 0.99)


SYNTHETIC = [
    # name, rate, seconds, channels, kind, extensible
    ("short_1s3_22k", 22050, 1.3, 1, "s16", False),
    ("stereo_44k1", 44100, 3.7, 2, "s16", False),
    ("pcm24_48k", 48000, 4.0, 1, "s24", False),
    ("float_ext_3ch_16k", 16000, 5.0, 3, "f32", True),
    ("pcm8_11k", 11025, 2.0, 1, "u8", False),
    ("long_25s_32k", 32000, 25.0, 1, "s16", False),
]


# ---------------------------------------------------------------- codec fixtures (system libraries)


class SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def load_lib(names):
    for n in names:
        try:
            return ctypes.CDLL(n)
        except OSError:
            pass
    sys.exit(f"missing system library {names[0]} (Debian: libsndfile1 / libmp3lame0)")


def sndfile_write(path, data, sr, fmt, bits=0):
    """Encodes with libsndfile (FLAC, Ogg Vorbis): an encoder independent of the C# decoders."""
    lib = load_lib(["libsndfile.so.1"])
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SfInfo)]
    lib.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
    lib.sf_writef_float.restype = ctypes.c_int64
    lib.sf_writef_int.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int64]
    lib.sf_writef_int.restype = ctypes.c_int64
    lib.sf_close.argtypes = [ctypes.c_void_p]
    info = SfInfo(0, sr, data.shape[0], fmt, 0, 0)
    handle = lib.sf_open(path.encode(), 0x20, ctypes.byref(info))  # SFM_WRITE
    if not handle:
        sys.exit(f"libsndfile could not open {path} for writing")
    if bits:
        # Integer API, so libsndfile writes exactly these samples (its float API rescales by 2^(b-1) - 1).
        full = np.round(data.T * (1 << (bits - 1))).astype(np.int64) << (32 - bits)
        inter = np.ascontiguousarray(full.astype(np.int32))
        written = lib.sf_writef_int(handle, inter.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), data.shape[1])
    else:
        inter = np.ascontiguousarray(data.T.astype(np.float32))
        written = lib.sf_writef_float(handle, inter.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), data.shape[1])
    lib.sf_close(handle)
    if written != data.shape[1]:
        sys.exit(f"libsndfile wrote {written} of {data.shape[1]} frames to {path}")


def lame_write(path, data, sr):
    lib = load_lib(["libmp3lame.so.0"])
    lib.lame_init.restype = ctypes.c_void_p
    for fn in ["lame_set_num_channels", "lame_set_in_samplerate", "lame_set_brate", "lame_set_quality"]:
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.lame_init_params.argtypes = [ctypes.c_void_p]
    lib.lame_encode_buffer.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_short), ctypes.POINTER(ctypes.c_short),
                                       ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.lame_encode_flush.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.lame_close.argtypes = [ctypes.c_void_p]
    gf = lib.lame_init()
    lib.lame_set_num_channels(gf, data.shape[0])
    lib.lame_set_in_samplerate(gf, sr)
    lib.lame_set_brate(gf, 192)
    lib.lame_set_quality(gf, 2)
    if lib.lame_init_params(gf) < 0:
        sys.exit("lame_init_params failed")
    pcm = np.clip(np.round(data * 32767), -32768, 32767).astype(np.int16)
    left = np.ascontiguousarray(pcm[0])
    right = np.ascontiguousarray(pcm[1] if data.shape[0] > 1 else pcm[0])
    n = data.shape[1]
    buf = ctypes.create_string_buffer(int(1.25 * n) + 7200)
    size = lib.lame_encode_buffer(gf, left.ctypes.data_as(ctypes.POINTER(ctypes.c_short)),
                                  right.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), n, buf, len(buf))
    out = buf.raw[:size]
    size = lib.lame_encode_flush(gf, buf, len(buf))
    out += buf.raw[:size]
    lib.lame_close(gf)
    with open(path, "wb") as f:
        f.write(out)


def make_codecs(codec_dir):
    os.makedirs(codec_dir, exist_ok=True)
    src = tone(44100, 3.0, 2, seed=7)
    pcm16 = np.clip(np.round(src * 32768), -32768, 32767) / 32768.0  # exactly representable in 16 bits
    np.save(os.path.join(codec_dir, "source_44k1_stereo.npy"), pcm16.astype(np.float32))
    sndfile_write(os.path.join(codec_dir, "tone.flac"), pcm16, 44100, 0x170000 | 0x0002, bits=16)  # FLAC, PCM_16
    mono24 = np.clip(np.round(tone(48000, 2.0, 1, seed=8) * 8388608), -8388608, 8388607) / 8388608.0
    np.save(os.path.join(codec_dir, "source_48k_mono24.npy"), mono24.astype(np.float32))
    sndfile_write(os.path.join(codec_dir, "mono24.flac"), mono24, 48000, 0x170000 | 0x0003, bits=24)  # FLAC, PCM_24
    sndfile_write(os.path.join(codec_dir, "tone.ogg"), pcm16, 44100, 0x200000 | 0x0060)  # OGG, VORBIS
    lame_write(os.path.join(codec_dir, "tone.mp3"), pcm16, 44100)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="test data root; writes OUT/preprocess/audio/")
    args = ap.parse_args()
    out = os.path.join(args.out, "preprocess", "audio")
    inputs = os.path.join(out, "inputs")
    os.makedirs(inputs, exist_ok=True)
    torch.set_num_threads(1)

    media = os.environ.get("FREEBIND_SHARED") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared")
    media = os.path.join(media, "media", "freebind-samples")
    paths = {os.path.splitext(s)[0]: os.path.abspath(os.path.join(media, s)) for s in SAMPLES}
    for name, sr, seconds, channels, kind, ext in SYNTHETIC:
        path = os.path.join(inputs, name + ".wav")
        write_wav(path, tone(sr, seconds, channels, seed=len(name)), sr, kind, ext)
        paths[name] = path

    manifest = []
    for name, path in paths.items():
        if not os.path.exists(path):
            sys.exit(f"missing input {path}")
        waveform, sr = torchaudio.load(path)
        wave16k, ib = imagebind_audio(waveform.clone(), sr)
        wave48k, clap_wave, fusion, fusion64 = clap_audio(waveform.clone(), sr)
        assert ib.shape == (3, 1, 128, 204), ib.shape
        assert clap_wave.shape == (1, MAX_LEN), clap_wave.shape
        assert fusion.shape == (1, 4, 1001, 64), fusion.shape
        for suffix, t in [("wave16k", wave16k), ("imagebind", ib), ("wave48k", wave48k),
                          ("clap", clap_wave), ("clap_fusion", fusion), ("clap_fusion_f64", fusion64)]:
            np.save(os.path.join(out, f"{name}.{suffix}.npy"), np.ascontiguousarray(t.numpy().astype(np.float32)))
        manifest.append({"name": name, "file": os.path.relpath(path, out) if path.startswith(out) else path,
                         "sample_rate": sr, "channels": waveform.shape[0], "frames": waveform.shape[1]})
        print(f"{name}: {waveform.shape[0]} ch {sr} Hz {waveform.shape[1]} frames")
    make_codecs(os.path.join(out, "codecs"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
