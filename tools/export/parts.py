"""What the export writes, from which input, and which spaces need it.

The manifests (spaces/*.json) name every file of a model root. A *part* is the group of files made
from one set of inputs: the encoders of one expert (plus its tokenizer files), or the projector
sets. `--only` selects parts by name. A part whose input is missing is skipped with a message
naming the spaces that cannot be served without it.

| part                | CLI inputs                  | architecture module call                                   |
| ------------------- | --------------------------- | ---------------------------------------------------------- |
| imagebind           | --imagebind, --clip-bpe     | models.imagebind.exports(path)                             |
| imagebind-audio-ft  | --freebind                  | models.imagebind.finetuned_audio_exports(path, head_files) |
| projectors          | --freebind                  | models.projector.exports(folder, files)                    |
| clap-general        | --clap-general, --roberta   | models.clap.exports(path, variant="general")               |
| clap-music          | --clap-music, --roberta     | models.clap.exports(path, variant="music")                 |
| internvl-c          | --internvl                  | models.internvl.exports(path)                              |
"""

from __future__ import annotations

import glob
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from contract import Export

# The fine-tuned ImageBind audio file: upstream's paths.py and README disagree on its name.
FT_AUDIO_NAMES = ("InternVL_IB_audio_with_head.pt", "DrvtFT_audio_with_head.pt")
FT_EXPERT = "imagebind-audio-ft"

# Tokenizer files of the manifests → (CLI input, file name inside it; None = the input is the file).
TOKENIZER_SOURCES = {
    "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz": ("clip_bpe", None),
    "tokenizers/roberta/vocab.json": ("roberta", "vocab.json"),
    "tokenizers/roberta/merges.txt": ("roberta", "merges.txt"),
    "tokenizers/internvl/tokenizer.model": ("internvl", "tokenizer.model"),
}

# Expert → part name and the CLI inputs its encoders need (tokenizer inputs are added from the files).
EXPERT_INPUTS = {
    "imagebind": "imagebind",
    FT_EXPERT: "freebind",
    "clap-general": "clap_general",
    "clap-music": "clap_music",
    "internvl-c": "internvl",
}

OPTION_OF = {"imagebind": "--imagebind", "freebind": "--freebind", "clap_general": "--clap-general",
             "clap_music": "--clap-music", "roberta": "--roberta", "internvl": "--internvl", "clip_bpe": "--clip-bpe"}


@dataclass
class Expected:
    """The contract of one file, from the manifests (independent of the architecture modules)."""

    file: str
    width: int
    profile: Optional[str] = None        # encoders
    rows_per_item: int = 1               # `clips` of the manifest
    input_width: Optional[int] = None    # projectors
    expert: Optional[str] = None
    projector_set: Optional[str] = None
    source: Optional[str] = None         # projectors: the expert whose atoms they read


@dataclass
class Part:
    name: str
    inputs: list[str]                              # CLI inputs (argparse dests)
    files: dict[str, Expected]                     # ONNX files it writes
    tokenizers: list[str] = field(default_factory=list)
    exports: Optional[Callable[[dict, list[str]], Iterator[Export]]] = None  # (inputs, files) → Exports
    tokenizer_profiles: dict[str, list[str]] = field(default_factory=dict)  # profile → tokenizer files

    def sources(self, args: dict) -> dict[str, str]:
        return {i: args[i] for i in self.inputs if args.get(i)}


@dataclass
class Manifests:
    spaces: dict[str, set[str]]      # space → every file it needs
    parts: dict[str, Part]

    def spaces_needing(self, files) -> list[str]:
        files = set(files)
        return sorted(s for s, need in self.spaces.items() if need & files)


def read_manifests(spaces_dir: str) -> Manifests:
    paths = sorted(glob.glob(os.path.join(spaces_dir, "*.json")))
    if not paths:
        raise FileNotFoundError(f"no space manifests in {spaces_dir}")
    spaces: dict[str, set[str]] = {}
    parts: dict[str, Part] = {}

    def part(name: str, inputs: list[str]) -> Part:
        if name not in parts:
            parts[name] = Part(name, list(inputs), {})
        return parts[name]

    def add(p: Part, e: Expected) -> None:
        old = p.files.get(e.file)
        if old is not None and old != e:
            raise ValueError(f"{e.file} is declared twice with different contracts: {old} vs {e}")
        p.files[e.file] = e

    for path in paths:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        need: set[str] = set()
        for expert, e in m["experts"].items():
            if expert not in EXPERT_INPUTS:
                raise ValueError(f"{path}: the exporter does not know expert '{expert}'")
            p = part(expert, [EXPERT_INPUTS[expert]])
            for mod in e["modalities"].values():
                add(p, Expected(mod["model"], e["dimension"], mod["profile"], int(mod.get("clips", 1)), expert=expert))
                need.add(mod["model"])
                toks = list(mod.get("tokenizer", []))
                for tok in toks:
                    if tok not in TOKENIZER_SOURCES:
                        raise ValueError(f"{path}: the exporter does not know where tokenizer '{tok}' comes from")
                    if tok not in p.tokenizers:
                        p.tokenizers.append(tok)
                    src = TOKENIZER_SOURCES[tok][0]
                    if src not in p.inputs:
                        p.inputs.append(src)
                    need.add(tok)
                if toks:
                    p.tokenizer_profiles[mod["profile"]] = toks
        for set_name, ps in m["projectorSets"].items():
            # A set read from the fine-tuned audio trunk is that file's own head.
            p = part(FT_EXPERT, ["freebind"]) if ps["source"] == FT_EXPERT else part("projectors", ["freebind"])
            for rel in ps["files"]:
                add(p, Expected(rel, ps["outputDimension"], input_width=ps["inputDimension"], projector_set=set_name,
                                source=ps["source"]))
                need.add(rel)
        spaces[m["name"]] = need
    for p in parts.values():
        p.exports = _BINDINGS[p.name]
    # projectors last: their real-input check reads the atoms of the encoders exported before them
    order = ["imagebind", FT_EXPERT, "clap-general", "clap-music", "internvl-c", "projectors"]
    return Manifests(spaces, {n: parts[n] for n in order if n in parts})


# ---------------------------------------------------------------------------------------------
# Bindings: part → architecture module call. Modules are imported when their part runs, so a
# module that is not there yet only affects its own part.


def _module(name: str):
    return importlib.import_module(f"models.{name}")


def ft_audio_file(folder: str) -> Optional[str]:
    for name in FT_AUDIO_NAMES:
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    return None


def projector_source(folder: str, rel: str) -> str:
    """`IB_PP_G_Proj/mix/best.onnx` → `<folder>/IB_PP_G_Proj/mix/best.pt`."""
    return os.path.join(folder, os.path.splitext(rel)[0] + ".pt")


def _imagebind(args: dict, files: list[str]) -> Iterator[Export]:
    return _module("imagebind").exports(args["imagebind"])


def _ft_audio(args: dict, files: list[str]) -> Iterator[Export]:
    head = [f for f in files if not f.startswith("encoders/")]
    return _module("imagebind").finetuned_audio_exports(ft_audio_file(args["freebind"]), head)


def _projectors(args: dict, files: list[str]) -> Iterator[Export]:
    return _module("projector").exports(args["freebind"], files)


def _clap(variant: str):
    def run(args: dict, files: list[str]) -> Iterator[Export]:
        return _module("clap").exports(args[f"clap_{variant}"], variant=variant)
    return run


def _internvl(args: dict, files: list[str]) -> Iterator[Export]:
    return _module("internvl").exports(args["internvl"])


_BINDINGS = {"imagebind": _imagebind, FT_EXPERT: _ft_audio, "projectors": _projectors,
             "clap-general": _clap("general"), "clap-music": _clap("music"), "internvl-c": _internvl}
