"""export.json: what a model root holds, where each file came from, and every check's figure.

Kept in the model root and updated part by part: a later `--only` run replaces its own entries and
keeps the others. Written atomically after every part, so an interrupted export leaves a record
of what was finished.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FORMAT = 1


def sha256_path(path: str) -> str:
    """SHA-256 of a file, or of a folder as `sha256(name\\0digest\\n …)` over its files in name order."""
    if os.path.isdir(path):
        h = hashlib.sha256()
        for f in sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(p)):
            h.update(f"{os.path.relpath(f, path)}\0{sha256_path(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_version() -> str:
    """The repository commit and a digest of the tool's own sources (which may differ from it)."""
    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(HERE, "**", "*.py"), recursive=True)):
        h.update(os.path.relpath(f, HERE).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit}+{h.hexdigest()[:12]}"


class Record:
    def __init__(self, root: str):
        self.path = os.path.join(root, "export.json")
        self.data = {"files": {}, "tokenizers": {}, "sources": {}}
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.data.update(json.load(f))
        self._digests: dict[str, str] = {}

    @property
    def files(self) -> dict:
        return self.data["files"]

    def source(self, option: str, path: str) -> str:
        """Records an input (its SHA-256, computed once per path) and returns the digest."""
        key = os.path.abspath(path)
        if key not in self._digests:
            self._digests[key] = sha256_path(path)
        self.data["sources"][option] = {"path": key, "sha256": self._digests[key]}
        return self._digests[key]

    def tokenizer(self, rel: str, source: str, copied: str) -> None:
        self.data["tokenizers"][rel] = {"source": os.path.abspath(source), "sha256": sha256_path(copied)}

    def save(self) -> None:
        d = self.data
        d["format"] = FORMAT
        d["tool"] = {"version": tool_version(), "command": sys.argv}
        d["libraries"] = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                          "numpy": np.__version__, "opset": 17}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
