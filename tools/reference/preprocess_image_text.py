#!/usr/bin/python3
"""Reference image and text preprocessing for FreeBind.Pipeline parity tests.

Runs the upstream recipes with Debian's torch 1.13 / torchvision 0.14 / PIL and writes expected
tensors and token ids under OUT/preprocess/:

  images/<name>.<profile>.npy      float32 [1,3,224,224] for the sample JPEGs
  hostile/<case>.<ext>             small generated images (EXIF-rotated, grayscale, alpha, GIF, ...)
  hostile/<case>.<profile>.npy     their expected tensors (PIL decoding + the same recipe)
  text/corpus.json                 the hard-string corpus (captions first)
  text/roberta.json                RobertaTokenizer ids + attention mask ([77] each)
  text/internvl.json               LLaMA SentencePiece ids ([80] each)

CLIP text (ImageBind's SimpleTokenizer after ftfy) is not held against a twin written here: its
oracle is tests/fixtures/upstream/clip-text.json, ids that ImageBind's own tokenizer with ftfy 6.1.3
computed outside the repository (Debian has neither ftfy nor transformers). The ClipTokenizer below
only tokenises the captions for the stand-in encoders and the benchmark, and is checked against that
fixture on them. RoBERTa and SentencePiece follow HF transformers 4.30.2 (FreeBind's version), read
from its source: GPT-2's pattern and byte-level BPE with the python3-regex module HF uses, merges
read as HF reads them, and Google's sentencepiece library itself. Both twins are held to
tests/fixtures/upstream/hf-text.json (ids from HF's own tokenizer code, upstream_hf.py) when the text
corpus is written.

`--emit-tables FILE` writes the generated C# Unicode/HTML tables used by the C# side
(src/Encoding/Preprocessing/Text/TextTables.g.cs) from this interpreter's unicodedata and
html.entities, so both sides share one source of facts.
"""

import argparse
import gzip
import hashlib
import html
import html.entities
import io
import json
import os
import sys
import unicodedata

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms

try:
    import regex  # Debian python3-regex: the module CLIP and GPT-2 tokenizers use
except ImportError:  # pragma: no cover - reported loudly, the pure fallback below is equivalent
    regex = None

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("FREEBIND_SHARED") or os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
MEDIA = os.path.join(SHARED, "media", "freebind-samples")
CLIP_VOCAB = os.path.join(SHARED, "vocab", "bpe_simple_vocab_16e6.txt.gz")

IMAGEBIND_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGEBIND_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------
# images

def imagebind_vision(img):
    """ImageBind data.load_and_transform_vision_data, on an already RGB PIL image."""
    t = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGEBIND_MEAN, std=IMAGEBIND_STD),
    ])
    return t(img).unsqueeze(0).numpy().astype(np.float32)


def internvl_vision(img):
    """HF CLIPImageProcessor as configured for InternVL-14B-224px (size 224 shortest edge,
    crop 224, bicubic, ImageNet mean/std), re-implemented with numpy because Debian has no
    transformers: short side → int(224·long/short), PIL bicubic, floor-centred crop,
    float64 ·(1/255) → float32, (x−mean)/std in float32."""
    w, h = img.size
    if w <= h:
        nw, nh = 224, int(224 * h / w)
    else:
        nw, nh = int(224 * w / h), 224
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
    arr = np.array(img)  # HWC uint8
    top, left = (nh - 224) // 2, (nw - 224) // 2
    arr = arr[top:top + 224, left:left + 224]
    arr = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)
    std = np.array(IMAGENET_STD, dtype=np.float32)
    arr = (arr - mean) / std
    return arr.transpose(2, 0, 1)[None].astype(np.float32)


IMAGE_PROFILES = {"imagebind-vision": imagebind_vision, "internvl-vision": internvl_vision}


def open_rgb(path, exif=True):
    img = Image.open(path)
    if exif:
        img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


def write_images(out):
    d = os.path.join(out, "images")
    os.makedirs(d, exist_ok=True)
    for name in ("BBQ", "toilet", "train"):
        # Upstream does Image.open(...).convert("RGB"); the samples carry no EXIF orientation.
        img = open_rgb(os.path.join(MEDIA, name + ".jpeg"), exif=False)
        for profile, fn in IMAGE_PROFILES.items():
            np.save(os.path.join(d, f"{name}.{profile}.npy"), fn(img))


def write_hostile(out):
    """Small generated images whose expected tensors come from PIL (+ exif_transpose)."""
    d = os.path.join(out, "hostile")
    os.makedirs(d, exist_ok=True)
    base = Image.open(os.path.join(MEDIA, "BBQ.jpeg")).convert("RGB").resize((320, 180), Image.BICUBIC)
    cases = {}

    # EXIF orientation 6 (stored landscape, shown rotated 90° clockwise); expected = exif_transpose.
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(os.path.join(d, "exif6.jpg"), quality=92, exif=exif.tobytes())
    cases["exif6.jpg"] = open_rgb(os.path.join(d, "exif6.jpg"))
    assert cases["exif6.jpg"].size == (180, 320)

    base.convert("L").save(os.path.join(d, "gray.png"))
    base.convert("L").save(os.path.join(d, "gray.jpg"), quality=90)

    rgba = base.convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)  # alpha 0..255: PIL's convert('RGB') drops it, no compositing
    rgba.save(os.path.join(d, "alpha.png"))
    rgba.save(os.path.join(d, "alpha.webp"), lossless=True)

    base.save(os.path.join(d, "lossless.webp"), lossless=True)
    base.save(os.path.join(d, "lossy.webp"), quality=80)
    base.save(os.path.join(d, "rgb24.bmp"))

    # Two-frame GIF: only the first frame counts.
    f1 = base.quantize(colors=64)
    f2 = base.transpose(Image.FLIP_LEFT_RIGHT).quantize(colors=64)
    f1.save(os.path.join(d, "anim.gif"), save_all=True, append_images=[f2], duration=100, loop=0)

    base.convert("CMYK").save(os.path.join(d, "cmyk.jpg"), quality=95)
    base.save(os.path.join(d, "progressive.jpg"), quality=85, progressive=True)
    base.resize((300, 500)).save(os.path.join(d, "portrait.png"))  # portrait, odd crop margin

    for f in sorted(os.listdir(d)):
        if f.endswith(".npy"):
            continue
        img = cases.get(f) or open_rgb(os.path.join(d, f))
        for profile, fn in IMAGE_PROFILES.items():
            np.save(os.path.join(d, f"{f}.{profile}.npy"), fn(img))


def check_internvl_vision_against_upstream(out):
    """internvl_vision against pixel_values HF transformers' own CLIPImageProcessor computed (upstream_hf_image.py) on
    the same files: per-channel sums and strided values equal to float32 rounding. Against the EXIF-6 image as upstream
    opens it (not rotated), deviation 1 of docs/preprocessing.md, the result must differ."""
    with open(UPSTREAM_HF_IMAGE, encoding="utf-8") as f:
        fixture = json.load(f)
    wrong = []
    for case in fixture["cases"]:
        path = os.path.join(MEDIA, case["file"]) if case["kind"] == "sample" else os.path.join(out, "hostile", case["file"])
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != case["sha256"]:
                raise SystemExit(f"{path} is not the file {UPSTREAM_HF_IMAGE} was computed from: regenerate it with tools/reference/upstream_hf_image.py")
        deviation = case["file"] == "exif6.jpg" and case["opened_with"] == "Image.open"
        values = internvl_vision(open_rgb(path))[0]  # as the product opens it: EXIF orientation applied
        sums = [float(values[c].astype(np.float64).sum()) for c in range(3)]
        same = (np.abs(values.reshape(-1)[::fixture["stride"]] - np.array(case["strided"], dtype=np.float32)).max() <= 1e-6
                and max(abs(a - b) for a, b in zip(sums, case["channel_sums"])) <= 1e-2)
        if same == deviation:
            wrong.append(f"{case['file']} ({case['opened_with']})")
    if wrong:
        raise SystemExit(f"internvl_vision disagrees with HF transformers' own CLIPImageProcessor ({UPSTREAM_HF_IMAGE}) on: " + "; ".join(wrong))


# ----------------------------------------------------------------------------------------------
# text: a simplified ftfy for the captions (the oracle for CLIP text is the upstream fixture)

# "sloppy" windows-1252: the five undefined bytes map to the C1 code point of the same value.
# C1 controls map to their own byte too (latin-1 mojibake).
SLOPPY_1252 = {chr(b): b for b in range(256)}
for b in range(256):
    ch = bytes([b]).decode("cp1252", errors="replace")
    SLOPPY_1252[chr(b) if ch == "\ufffd" else ch] = b

# ftfy 6.1.3's LIGATURES (chardata.py) are these code points' NFKC forms except U+FB05, which ftfy maps
# to "ſt" (long s kept); its WIDTH_MAP is U+3000 → space plus NFKC of U+FF01–U+FFEF.
LIGATURES = [0x132, 0x133, 0x149] + list(range(0x1C4, 0x1CD)) + list(range(0x1F1, 0x1F4)) + list(range(0xFB00, 0xFB07))
NFKC_MAP = {}
for cp in LIGATURES + list(range(0xFF01, 0xFFF0)):
    alt = unicodedata.normalize("NFKC", chr(cp))
    if alt != chr(cp):
        NFKC_MAP[cp] = alt
NFKC_MAP[0xFB05] = "\u017Ft"
NFKC_MAP[0x3000] = " "


def is_control(cp):
    return (cp <= 0x08 or cp == 0x0B or 0x0E <= cp <= 0x1F or cp == 0x7F or 0x206A <= cp <= 0x206F
            or cp == 0xFEFF or 0xFFF9 <= cp <= 0xFFFC or 0x1D173 <= cp <= 0x1D17A or 0xE0000 <= cp <= 0xE007F)


def strip_terminal_escapes(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\x1b" and i + 1 < len(s) and s[i + 1] == "[":
            j = i + 2
            while j < len(s) and (s[j].isascii() and (s[j].isdigit() or s[j] == ";")):
                j += 1
            if j < len(s) and s[j].isascii() and s[j].isalpha():
                i = j + 1
                continue
        out.append(s[i])
        i += 1
    return "".join(out)


def fix_mojibake(s):
    """UTF-8 that was decoded as windows-1252/latin-1, up to three layers deep."""
    for _ in range(3):
        try:
            raw = bytes(SLOPPY_1252[c] for c in s)
        except KeyError:
            return s
        if all(b < 0x80 for b in raw):
            return s
        try:
            fixed = raw.decode("utf-8")
        except UnicodeDecodeError:
            return s
        if fixed == s:
            return s
        s = fixed
    return s


def fix_text(s):
    s = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    s = strip_terminal_escapes(s)
    s = fix_mojibake(s)
    out = []
    for c in s:
        cp = ord(c)
        if cp in NFKC_MAP:
            out.append(NFKC_MAP[cp])
        elif cp == 0x2BC or 0x2018 <= cp <= 0x201B:
            out.append("'")
        elif 0x201C <= cp <= 0x201F:
            out.append('"')
        elif is_control(cp):
            continue
        else:
            out.append(c)
    return unicodedata.normalize("NFC", "".join(out))


# ----------------------------------------------------------------------------------------------
# text: CLIP SimpleTokenizer (ImageBind's copy), from the published algorithm

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENC = bytes_to_unicode()


def bpe_merge(word, ranks):
    """Greedy lowest-rank pair merging over a tuple of symbols."""
    word = list(word)
    while len(word) > 1:
        best, best_rank = None, None
        for i in range(len(word) - 1):
            r = ranks.get((word[i], word[i + 1]))
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = (word[i], word[i + 1]), r
        if best is None:
            break
        merged, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                merged.append(best[0] + best[1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


def clip_pretokenize(text):
    if regex is not None:
        return regex.findall(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", text, regex.IGNORECASE)
    raise SystemExit("python3-regex is required (apt-get install python3-regex)")


class ClipTokenizer:
    def __init__(self, path):
        merges = gzip.open(path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(BYTE_ENC.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}

    def encode(self, text):
        text = fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for tok in clip_pretokenize(text):
            if tok in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.encoder[tok])
                continue
            sym = "".join(BYTE_ENC[b] for b in tok.encode("utf-8"))
            word = list(sym[:-1]) + [sym[-1] + "</w>"]
            ids.extend(self.encoder[p] for p in bpe_merge(word, self.ranks))
        return ids

    def __call__(self, text, length=77):
        toks = [49406] + self.encode(text) + [49407]
        if len(toks) > length:  # OpenAI clip.tokenize(truncate=True): keep EOT last
            toks = toks[:length]
            toks[-1] = 49407
        return toks + [0] * (length - len(toks))


# ----------------------------------------------------------------------------------------------
# text: HF slow tokenizers split special-token literals out of the text first

def split_special(text, specials, strip_before=()):
    """[(piece, is_special)]: the literals of `specials` (longest first where two start at one place) and the
    non-empty text between them; a literal in `strip_before` removes the whitespace just before it."""
    pieces, start, i = [], 0, 0
    while i < len(text):
        match = max((s for s in specials if text.startswith(s, i)), key=len, default=None)
        if match is None:
            i += 1
            continue
        before = text[start:i]
        if match in strip_before:
            before = before.rstrip()
        if before:
            pieces.append((before, False))
        pieces.append((match, True))
        i += len(match)
        start = i
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


# ----------------------------------------------------------------------------------------------
# text: HF RobertaTokenizer (GPT-2 byte-level BPE), from the published algorithm

class RobertaTokenizer:
    PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    def __init__(self, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().split("\n")[1:-1]  # HF: the first line is the "#version" header
        merges = [tuple(l.split()) for l in lines]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.bos, self.eos, self.pad, self.unk = (self.encoder[t] for t in ("<s>", "</s>", "<pad>", "<unk>"))

    SPECIALS = ["<s>", "</s>", "<unk>", "<pad>", "<mask>"]

    def encode(self, text):
        ids = []
        # A special token's literal is that token; <mask> (lstrip=True) also takes the whitespace before it.
        for piece, special in split_special(text, self.SPECIALS, strip_before={"<mask>"}):
            if special:
                ids.append(self.encoder[piece])
                continue
            for tok in regex.findall(self.PAT, piece):
                sym = "".join(BYTE_ENC[b] for b in tok.encode("utf-8"))
                ids.extend(self.encoder.get(p, self.unk) for p in bpe_merge(list(sym), self.ranks))
        return ids

    def __call__(self, text, length=77):
        ids = [self.bos] + self.encode(text)[:length - 2] + [self.eos]
        mask = [1] * len(ids) + [0] * (length - len(ids))
        return ids + [self.pad] * (length - len(ids)), mask


# ----------------------------------------------------------------------------------------------
# text: InternVL-C (LLaMA SentencePiece, slow HF tokenizer, add_eos_token=True, pad 0)

class InternVLTokenizer:
    def __init__(self, model_path):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=model_path)

    def __call__(self, text, length=80):
        special = {"<s>": self.sp.bos_id(), "</s>": self.sp.eos_id(), "<unk>": self.sp.unk_id()}
        ids = []
        for piece, is_special in split_special("summarize:" + text, list(special)):
            ids.extend([special[piece]] if is_special else self.sp.encode(piece))
        ids = [self.sp.bos_id()] + ids[:length - 2] + [self.sp.eos_id()]
        return ids + [0] * (length - len(ids))


CAPTIONS = ["an audio of barbeque", "an audio of toilet", "an audio of train"]


def corpus():
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
    return CAPTIONS + [
        "A photo of a DOG", "Hello, World!!!", "don't stop believin'", "It's John's car; they'll see",
        "I'M SURE YOU'VE HEARD WE'D", "café crème brûlée", "naïve façade Ångström", "Ελληνικά ΟΔΟΣ",
        "ΌΣΟΣ ΣΑΣ", "İstanbul'da", "Straße ß", "東京タワーの夜景", "我爱北京天安门", "한국어 텍스트",
        "😀 party 🎉🎉 time 👍🏽", "👨‍👩‍👧‍👦 family", "rock &amp; roll", "&lt;b&gt;bold&lt;/b&gt;",
        "&amp;amp; double", "fish &amp chips", "&copy 2024 &eacute;t&eacute;", "&#39;quoted&#39; &#x27;hex&#x27;",
        "&#128512; &#x1F389;", "&notanentity; &#0; &#x110000;", "&nbsp;&nbsp;spaced", "!!!???...",
        "----====****", "$$$ 100% @@@ ###", "3.14159 2,718 1e-9 42", "1234567890", "0x1F and 007",
        "tabs\tand\nnewlines\r\nhere", "   leading and trailing   ", "many     inner      spaces",
        "\u201csmart quotes\u201d and \u2018single\u2019", "ﬁne ﬂour ﬀ", "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ１２３",
        "cafÃ© mojibake", "donâ€™t mojibake", "Ã¼ber doppel", "cafÃ\x83Â© two layers", "e\u0301le\u0300ve decomposed",
        "zero\u200bwidth\u200djoin", "soft\u00adhyphen", "ctrl\x07chars\x1b[31mred\x1b[0m",
        "MiXeD CaSe WoRdS", "snake_case and kebab-case", "http://example.com/a?b=c&d=e",
        "user@example.com", "C++ and C# and F#", "x² + y³ = z⁴", "½ ¼ ¾ № ™ ©", "١٢٣ arabic digits",
        "مرحبا بالعالم", "שלום עולם", "Привет, МИР", "ｶﾀｶﾅ halfwidth", "<|startoftext|> literal",
        "<|endoftext|>", "'s 't 're", "a" * 300, long_text, "word " * 100,
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "émoji🙂mixed中文text123", "\u00a0nbsp\u2003emspace\u3000ideo",
    ]


UPSTREAM_CLIP = os.path.join(HERE, "..", "..", "tests", "fixtures", "upstream", "clip-text.json")
UPSTREAM_HF_IMAGE = os.path.join(HERE, "..", "..", "tests", "fixtures", "upstream", "hf-image.json")
UPSTREAM_HF = os.path.join(HERE, "..", "..", "tests", "fixtures", "upstream", "hf-text.json")


def check_captions_against_upstream(clip):
    """The captions feed the stand-in text encoders: their ids must be upstream's exactly."""
    with open(UPSTREAM_CLIP, encoding="utf-8") as f:
        upstream = {c["text"]: c["ids"] for c in json.load(f)["cases"]}
    for caption in CAPTIONS:
        if clip(caption) != upstream[caption]:
            raise SystemExit(f"CLIP ids of {caption!r} differ from ImageBind's own tokenizer ({UPSTREAM_CLIP})")


def check_twins_against_upstream(rob, ivl, files):
    """The RoBERTa and InternVL twins against ids HF transformers' own tokenizers computed (upstream_hf.py), on the
    same generated tokenizer files: every text must be equal, special-token literals included."""
    with open(UPSTREAM_HF, encoding="utf-8") as f:
        fixture = json.load(f)
    for name, path in files.items():
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != fixture["tokenizers"][name]:
                raise SystemExit(f"{path} is not the tokenizer {UPSTREAM_HF} was computed with: regenerate it with tools/reference/upstream_hf.py")
    wrong = []
    for case in fixture["cases"]:
        ids, mask = rob(case["text"])
        if (ids, mask) != (case["roberta_ids"], case["roberta_mask"]):
            wrong.append(f"roberta {case['text'][:40]!r}")
        if ivl(case["text"]) != case["internvl_ids"]:
            wrong.append(f"internvl {case['text'][:40]!r}")
    if wrong:
        raise SystemExit(f"the tokenizer twins disagree with HF transformers' own code ({UPSTREAM_HF}) on: " + "; ".join(wrong))


def write_text(out, tokdir):
    d = os.path.join(out, "text")
    os.makedirs(d, exist_ok=True)
    texts = corpus()
    with open(os.path.join(d, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=True, indent=0)
    check_captions_against_upstream(ClipTokenizer(CLIP_VOCAB))
    rv, rm = os.path.join(tokdir, "roberta", "vocab.json"), os.path.join(tokdir, "roberta", "merges.txt")
    sp = os.path.join(tokdir, "internvl", "tokenizer.model")
    for p in (rv, rm, sp):
        if not os.path.exists(p):
            raise SystemExit(f"missing tokenizer file {p}: run tools/reference/make_tokenizers.py --out DIR first")
    rob = RobertaTokenizer(rv, rm)
    res = [rob(t) for t in texts]
    with open(os.path.join(d, "roberta.json"), "w") as f:
        json.dump({"input_ids": [r[0] for r in res], "attention_mask": [r[1] for r in res]}, f)
    ivl = InternVLTokenizer(sp)
    with open(os.path.join(d, "internvl.json"), "w") as f:
        json.dump([ivl(t) for t in texts], f)
    check_twins_against_upstream(rob, ivl, {"roberta/vocab.json": rv, "roberta/merges.txt": rm, "internvl/tokenizer.model": sp})


# ----------------------------------------------------------------------------------------------
# generated C# tables

def emit_tables(path):
    def esc(s):
        units = s.encode("utf-16-le", "surrogatepass")
        return "".join(
            (chr(u) if 0x20 <= u < 0x7F and chr(u) not in '"\\' else f"\\u{u:04X}")
            for u in (int.from_bytes(units[i:i + 2], "little") for i in range(0, len(units), 2)))

    ents = sorted(html.entities.html5.items())
    decomp, ccc, comp = [], [], []
    for cp in range(0x110000):
        if 0xAC00 <= cp <= 0xD7A3 or 0xD800 <= cp <= 0xDFFF:
            continue  # Hangul is algorithmic; surrogates are not characters
        c = chr(cp)
        d = unicodedata.normalize("NFD", c)
        if d != c:
            decomp.append((cp, d))
        k = unicodedata.combining(c)
        if k:
            ccc.append((cp, k))
        raw = unicodedata.decomposition(c)
        if raw and not raw.startswith("<"):
            parts = [chr(int(x, 16)) for x in raw.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", "".join(parts)) == c:
                comp.append((parts[0], parts[1], c))
    lines = [
        "// <auto-generated>",
        f"// Generated by tools/reference/preprocess_image_text.py --emit-tables from Python {sys.version.split()[0]}",
        f"// (Unicode {unicodedata.unidata_version}, html.entities.html5). Regenerate, do not edit.",
        "// </auto-generated>",
        "namespace FreeBind.Encoding.Preprocessing.Text;",
        "",
        "internal static partial class TextTables",
        "{",
        f"    internal const string UnicodeVersion = \"{unicodedata.unidata_version}\";",
        "",
        "    // name \\u0001 replacement \\u0002 ... (names include the trailing ';' where HTML5 requires it)",
        "    private const string HtmlEntityData =",
    ]
    chunk = []
    for name, val in ents:
        chunk.append(esc(name) + "\\u0001" + esc(val) + "\\u0002")
    for i in range(0, len(chunk), 12):
        lines.append('        "' + "".join(chunk[i:i + 12]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    # ftfy 6.1.3 also decodes an all-lowercase entity name written in upper case (&EACUTE; → "É") when
    # Python's html.unescape leaves that spelling alone; the value is Python's str.upper() of the character.
    upper = []
    for name, val in ents:
        if name.endswith(";") and name == name.lower():
            up = "&" + name.upper()
            if html.unescape(up) == up:
                upper.append((name.upper(), val.upper()))
    lines += ["", "    // ftfy's upper-cased entity names (with ';') \\u0001 replacement \\u0002 ...",
              "    private const string UpperEntityData ="]
    chunk = [esc(n) + "\\u0001" + esc(v) + "\\u0002" for n, v in upper]
    for i in range(0, len(chunk), 12):
        lines.append('        "' + "".join(chunk[i:i + 12]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    lines += ["", "    // ftfy's ligature and character-width replacements (ligatures, full/half width forms, ideographic space)",
              "    private const string WidthData ="]
    chunk = [esc(chr(cp)) + esc(v) + "\\u0002" for cp, v in sorted(NFKC_MAP.items())]
    for i in range(0, len(chunk), 16):
        lines.append('        "' + "".join(chunk[i:i + 16]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    lines += ["", "    // code point (hex) ':' full canonical decomposition (hex code points, '.'-separated) ';'",
              "    private const string DecompositionData ="]
    chunk = [f"{cp:X}:" + ".".join(f"{ord(x):X}" for x in d) + ";" for cp, d in decomp]
    for i in range(0, len(chunk), 16):
        lines.append('        "' + "".join(chunk[i:i + 16]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    lines += ["", "    // code point (hex) ':' canonical combining class ';'", "    private const string CombiningClassData ="]
    chunk = [f"{cp:X}:{k};" for cp, k in ccc]
    for i in range(0, len(chunk), 20):
        lines.append('        "' + "".join(chunk[i:i + 20]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    lines += ["", "    // first.second ':' primary composite ';' (hex)", "    private const string CompositionData ="]
    chunk = [f"{ord(a):X}.{ord(b):X}:{ord(c):X};" for a, b, c in comp]
    for i in range(0, len(chunk), 16):
        lines.append('        "' + "".join(chunk[i:i + 16]) + '" +')
    lines[-1] = lines[-1][:-2] + ";"
    lines.append("}")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="test data folder (writes OUT/preprocess/...)")
    ap.add_argument("--tokenizers", help="folder with roberta/ and internvl/ (default OUT/tokenizers)")
    ap.add_argument("--emit-tables", help="write the generated C# text tables to this file and exit")
    a = ap.parse_args()
    if a.emit_tables:
        emit_tables(a.emit_tables)
        return
    if not a.out:
        ap.error("--out is required")
    if regex is None:
        raise SystemExit("python3-regex is required for the CLIP/GPT-2 pre-tokenisation reference (apt-get install python3-regex)")
    torch.set_num_threads(1)
    out = os.path.join(a.out, "preprocess")
    os.makedirs(out, exist_ok=True)
    write_images(out)
    write_hostile(out)
    check_internvl_vision_against_upstream(out)
    write_text(out, a.tokenizers or os.path.join(a.out, "tokenizers"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
