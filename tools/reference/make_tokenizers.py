"""Tokenizer files the space manifests name, made locally (no hub): run `--out DIR` or import.

- tokenizers/clip/bpe_simple_vocab_16e6.txt.gz: a copy of the shared CLIP BPE vocabulary.
- tokenizers/roberta/{vocab.json,merges.txt}: a small GPT-2/RoBERTa-format byte-level BPE whose
  merges are learned here from CORPUS.
- tokenizers/internvl/tokenizer.model: a tiny LLaMA-like SentencePiece BPE model trained on CORPUS.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import shutil

ROBERTA_MERGES = 400
SPM_VOCAB = 500

# Own text, ASCII only, about the things the spaces embed; enough for a few hundred merges.
CORPUS = """\
An audio of barbeque: fat sizzles on a hot grill while people talk in the garden.
An audio of toilet: a flush, then water refills the tank with a low hiss.
An audio of train: the wheels click over the rails and a horn sounds twice in the distance.
A photo of a train crossing a bridge over a wide river at sunset.
A dog barks at the postman and the neighbours' dog answers from across the street.
Rain falls on a tin roof and thunder rolls somewhere far away over the hills.
A child laughs while playing with a red ball on the beach near the waves.
The crowd cheers as the home team scores a goal in the last minute of the match.
A woman sings a slow song while a man plays the acoustic guitar beside her.
An orchestra tunes its instruments before the concert begins in the old hall.
A drummer counts four and the band starts a fast rock song with loud electric guitars.
Birds sing in the morning while the wind moves the leaves of the tall trees.
A car engine starts, idles for a moment, and then drives away down the road.
The kettle whistles in the kitchen and someone pours hot water into a cup.
A cat sleeps on the warm windowsill in the afternoon light.
Two people talk quietly in a cafe while cups and plates clatter in the background.
A siren wails as an ambulance passes through the busy city traffic at night.
Waves crash against the rocks and seagulls call above the harbour.
A piano plays a gentle melody in a quiet room with wooden floors.
The church bells ring at noon over the small town square.
A jazz trio plays in a dark club: double bass, brushes on the snare, and a soft trumpet.
Footsteps echo in a long empty corridor of the station.
A baby cries and its mother hums a lullaby to calm it down.
An airplane takes off from the runway with a deep roar of its engines.
The fire crackles in the fireplace while snow falls outside the window.
A man chops wood in the forest and the axe strikes the log again and again.
Children play football in the park after school on a sunny day.
A violin and a cello play together in a string quartet.
The door creaks open slowly and a floorboard squeaks under a heavy step.
Frogs croak by the pond on a warm summer evening.
A motorcycle speeds past with a loud exhaust and fades into the distance.
People applaud at the end of the speech and someone whistles loudly.
A clock ticks on the wall of the quiet library.
The washing machine spins and beeps when the program is finished.
A horse gallops across the field and neighs near the fence.
Heavy traffic hums on the highway while a truck brakes with a hiss of air.
A street musician plays the accordion for people passing by.
Water drips from the tap into a metal sink, one drop at a time.
The choir sings a hymn and the organ fills the whole cathedral with sound.
A helicopter hovers over the city and its rotor beats the air.
Someone types quickly on a keyboard and clicks the mouse.
A bee buzzes around the flowers in the garden on a bright day.
The referee blows the whistle and the players stop running.
An electronic dance track with a heavy bass line and a fast beat.
A lonely saxophone plays the blues under a street lamp.
A hip hop beat with a deep kick drum, claps and a rapper speaking in rhythm.
Classical music for solo piano, calm and slow, in a minor key.
A folk song with a banjo, a fiddle and voices singing in harmony.
The wind howls through the mountains and snow blows across the ridge.
A small boat motor putters across the lake in the early morning mist.
An image of a red car parked in front of a white house.
A picture of a bowl of fruit with apples, oranges and bananas on a table.
A photograph of a busy market with people buying vegetables and bread.
A close up of a cat with green eyes looking at the camera.
A view of the mountains covered in snow under a clear blue sky.
A black and white photo of an old man reading a newspaper on a bench.
A plate of grilled meat and vegetables at a summer barbeque party.
A clean white bathroom with a toilet, a sink and a small mirror.
A steam train pulling old wooden carriages through green countryside.
Three friends sit around a campfire and sing songs late into the night.
The radio plays the news, then the weather, then a pop song from the nineties.
A phone rings twice and a voice answers: hello, who is speaking?
Glass breaks on the kitchen floor and a dog runs out of the room.
The audience is silent, then a single cough, then the music starts again.
Numbers and times: 7 trains leave at 10:30, 11:45 and 12:15 every day in 2024.
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (unprintable bytes shifted past 255)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
                 + list(range(ord("\xae"), ord("\xff") + 1)))
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


# GPT-2's pre-tokenisation, restricted to ASCII classes (the corpus is ASCII, Python's `re` has no \p{L}).
_PRETOKEN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def learn_byte_bpe(text: str, merges: int) -> list[tuple[str, str]]:
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: smallest pair)."""
    table = bytes_to_unicode()
    words = collections.Counter(
        tuple(table[b] for b in tok.encode("utf-8")) for tok in _PRETOKEN.findall(text))
    learned: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs: collections.Counter = collections.Counter()
        for word, freq in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        learned.append(best)
        joined = best[0] + best[1]
        merged: collections.Counter = collections.Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
        words = merged
    return learned


def write_roberta(out_dir: str) -> list[str]:
    learned = learn_byte_bpe(CORPUS, ROBERTA_MERGES)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in bytes_to_unicode().values():
        vocab.setdefault(symbol, len(vocab))
    for a, b in learned:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)  # RoBERTa keeps <mask> as the last id
    folder = os.path.join(out_dir, "tokenizers", "roberta")
    os.makedirs(folder, exist_ok=True)
    vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in learned)
    return [vocab_path, merges_path]


def write_sentencepiece(out_dir: str) -> list[str]:
    import sentencepiece as spm

    model = io.BytesIO()
    # LLaMA's settings: BPE, byte fallback, unk 0 / bos 1 / eos 2, no pad, digits split, no normaliser.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()), model_writer=model,
        model_type="bpe", vocab_size=SPM_VOCAB, byte_fallback=True, character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, split_digits=True, add_dummy_prefix=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2)
    folder = os.path.join(out_dir, "tokenizers", "internvl")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return [path]


def default_clip_vocab() -> str:
    shared = os.environ.get("FREEBIND_SHARED") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
    return os.path.normpath(os.path.join(shared, "vocab", "bpe_simple_vocab_16e6.txt.gz"))


def write_clip(out_dir: str, source: str | None = None) -> list[str]:
    source = source or default_clip_vocab()
    if not os.path.isfile(source):
        raise FileNotFoundError(f"CLIP BPE vocabulary not found at {source} (set FREEBIND_SHARED)")
    folder = os.path.join(out_dir, "tokenizers", "clip")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "bpe_simple_vocab_16e6.txt.gz")
    shutil.copyfile(source, path)
    return [path]


def make_all(out_dir: str, clip_vocab: str | None = None) -> list[str]:
    """Writes every tokenizer file; returns their paths."""
    return write_clip(out_dir, clip_vocab) + write_roberta(out_dir) + write_sentencepiece(out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="models folder (tokenizers/ is created inside)")
    ap.add_argument("--clip-vocab", help="CLIP bpe_simple_vocab_16e6.txt.gz (default: shared/vocab)")
    args = ap.parse_args()
    for p in make_all(args.out, args.clip_vocab):
        print(p)


if __name__ == "__main__":
    main()
