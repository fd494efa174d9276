"""Reading upstream checkpoints and loading them by exact keys.

`open_state` turns a checkpoint file (PyTorch zip or legacy pickle, safetensors) or a Hugging Face
folder (one file or an index with shards) into a `StateDict`: a read-only mapping from dotted key
to tensor. Nested dictionaries are flattened with dots, so a LAION CLAP file's weights are under
`state_dict.module.` and its `epoch` is in `StateDict.extras`. `load_exact` copies a StateDict into
a module and refuses any missing, unexpected or mis-shaped key by name.

Pickles are read with torch's weights-only unpickler: a checkpoint cannot run code unless the user
passes --allow-pickle for a file they trust.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import struct
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch


class CheckpointError(Exception):
    """Something is wrong with an input checkpoint; the message is one sentence a user can act on."""


def _short(keys: Iterable[str], limit: int = 6) -> str:
    keys = list(keys)
    head = ", ".join(keys[:limit])
    return head + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


# ---------------------------------------------------------------------------------------------
# StateDict


class _Shards:
    """Tensors of a sharded folder, loaded one shard at a time on first access."""

    def __init__(self, shard_of: dict[str, str], reader: Callable[[str], dict[str, torch.Tensor]]):
        self.shard_of = shard_of
        self._reader = reader
        self._loaded: dict[str, dict[str, torch.Tensor]] = {}

    def get(self, key: str) -> torch.Tensor:
        shard = self.shard_of[key]
        if shard not in self._loaded:
            tensors = self._reader(shard)
            missing = [k for k, s in self.shard_of.items() if s == shard and k not in tensors]
            if missing:
                raise CheckpointError(f"'{shard}' lacks {_short(missing)}, which its index lists: the folder is "
                                      f"incomplete or mixed from two downloads")
            self._loaded[shard] = tensors
        return self._loaded[shard][key]

    def release(self) -> None:
        self._loaded.clear()


class StateDict(Mapping[str, torch.Tensor]):
    """A read-only view of a checkpoint's tensors, possibly restricted to a key prefix."""

    def __init__(self, tensors: Mapping[str, torch.Tensor] | _Shards, source: str, *, prefix: str = "",
                 extras: Optional[dict] = None):
        self._tensors = tensors
        self._keys = list(tensors.shard_of if isinstance(tensors, _Shards) else tensors)
        self.source = source
        self.prefix = prefix
        self.extras = extras or {}

    # Mapping
    def __getitem__(self, key: str) -> torch.Tensor:
        full = self.prefix + key
        if isinstance(self._tensors, _Shards):
            if full not in self._tensors.shard_of:
                raise KeyError(key)
            return self._tensors.get(full)
        return self._tensors[full]

    def __iter__(self) -> Iterator[str]:
        n = len(self.prefix)
        return (k[n:] for k in self._keys if k.startswith(self.prefix))

    def __len__(self) -> int:
        return sum(1 for k in self._keys if k.startswith(self.prefix))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self.prefix + key) in (
            self._tensors.shard_of if isinstance(self._tensors, _Shards) else self._tensors)

    def under(self, prefix: str) -> "StateDict":
        """The keys that start with `prefix`, with it removed."""
        view = StateDict.__new__(StateDict)
        view._tensors, view._keys = self._tensors, self._keys
        view.source, view.prefix, view.extras = self.source, self.prefix + prefix, self.extras
        return view

    def has_prefix(self, prefix: str) -> bool:
        return any(True for k in self if k.startswith(prefix))

    def top_level(self) -> list[str]:
        """First key components, for messages about a wrong file."""
        return sorted({k.split(".", 1)[0] for k in self})

    @property
    def device(self) -> torch.device:
        for k in self:
            return self[k].device
        return torch.device("cpu")

    def release(self) -> None:
        """Frees loaded shards of a folder checkpoint (views share them)."""
        if isinstance(self._tensors, _Shards):
            self._tensors.release()

    def forget(self, prefix: str = "") -> None:
        """Drops this view's keys under `prefix` from the checkpoint (every view sees it), so that
        weights an exported module no longer needs are freed with it."""
        full = self.prefix + prefix
        if isinstance(self._tensors, _Shards):
            return  # shards are released as a whole
        for k in [k for k in self._keys if k.startswith(full)]:
            self._tensors.pop(k, None)
        self._keys[:] = [k for k in self._keys if not k.startswith(full)]


def count_indexed(state: StateDict, prefix: str) -> int:
    """How many consecutive blocks `prefix0.`, `prefix1.`, … the keys hold (0 if none)."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pat.match(k))}
    if found and found != set(range(len(found))):
        gaps = sorted(set(range(max(found) + 1)) - found)
        raise CheckpointError(f"{state.source}: blocks {prefix}{{i}} are not consecutive (missing {gaps[:6]}): "
                              f"the checkpoint is incomplete")
    return len(found)


def require(state: StateDict, key: str, what: str) -> torch.Tensor:
    """A tensor the architecture needs to size itself; a wrong file is named as such."""
    if key not in state:
        raise CheckpointError(f"'{state.source}' is not {what}: it has no '{state.prefix}{key}' "
                              f"(its keys start with {_short(state.top_level())})")
    return state[key]


# ---------------------------------------------------------------------------------------------
# Reading files and folders


def _flatten(obj, prefix: str, tensors: dict, extras: dict) -> None:
    if isinstance(obj, torch.Tensor):
        tensors[prefix[:-1]] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", tensors, extras)
    elif prefix:
        extras[prefix[:-1]] = obj


def _read_torch(path: str, allow_pickle: bool) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError… for damaged files
        text = str(e)
        if "Unsupported class" in text or "Unsupported global" in text:
            cls = text.rsplit("Unsupported ", 1)[1].split()[1] if "Unsupported " in text else "?"
            raise CheckpointError(f"'{path}' stores a Python object ({cls}) besides tensors; if you trust the file, "
                                  f"re-run with --allow-pickle") from None
        raise CheckpointError(f"'{path}' cannot be read as a PyTorch checkpoint ({text.splitlines()[0][:160]}): "
                              f"it is damaged or truncated, download it again") from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a state dict")
    return obj


_ST_DTYPES = {"F32": (np.float32, None), "F64": (np.float64, None), "F16": (np.float16, None),
              "BF16": (np.int16, torch.bfloat16), "I64": (np.int64, None), "I32": (np.int32, None),
              "I16": (np.int16, None), "I8": (np.int8, None), "U8": (np.uint8, None), "BOOL": (np.bool_, None)}


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """The safetensors format: 8-byte header length, a JSON header, then raw little-endian data."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n <= 0 or 8 + n > size:
            raise CheckpointError(f"'{path}' is not a safetensors file (bad header length): it is damaged or truncated")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise CheckpointError(f"'{path}' has an unreadable safetensors header: it is damaged") from None
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
    out = {}
    for key, info in header.items():
        if info["dtype"] not in _ST_DTYPES:
            raise CheckpointError(f"'{path}': tensor {key} has dtype {info['dtype']}, which the exporter does not read")
        np_dtype, view = _ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        if end > data.size:
            raise CheckpointError(f"'{path}' ends before tensor {key}'s data: it is truncated, download it again")
        arr = np.array(data[begin:end]).view(np_dtype).reshape(info["shape"])
        t = torch.from_numpy(arr)
        out[key] = t.view(view) if view is not None else t
    return out


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch"
    if head[:1] == b"\x80":
        return "torch"  # legacy (pre-1.6) pickle serialisation
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _read_file(path: str, allow_pickle: bool) -> tuple[dict, dict]:
    kind = _sniff(path)
    if kind == "unknown":
        raise CheckpointError(f"'{path}' is neither a PyTorch checkpoint nor a safetensors file "
                              f"({os.path.getsize(path)} bytes of something else): check the path")
    tensors: dict[str, torch.Tensor] = {}
    extras: dict = {}
    obj = _read_safetensors(path) if kind == "safetensors" else _read_torch(path, allow_pickle)
    _flatten(obj, "", tensors, extras)
    return tensors, extras


def _read_folder(folder: str, allow_pickle: bool) -> StateDict:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index_path = os.path.join(folder, index_name)
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map", {})
            absent = sorted({s for s in weight_map.values() if not os.path.isfile(os.path.join(folder, s))})
            if absent:
                raise CheckpointError(f"'{folder}' lacks {_short(absent)}, which {index_name} lists: "
                                      f"the download is incomplete")
            shard_of = {k: os.path.join(folder, s) for k, s in weight_map.items()}
            return StateDict(_Shards(shard_of, lambda p: _read_file(p, allow_pickle)[0]), folder)
    for single in ("model.safetensors", "pytorch_model.bin"):
        p = os.path.join(folder, single)
        if os.path.isfile(p):
            tensors, extras = _read_file(p, allow_pickle)
            return StateDict(tensors, folder, extras=extras)
    raise CheckpointError(f"'{folder}' holds no Hugging Face weights (no model.safetensors[.index.json] or "
                          f"pytorch_model.bin[.index.json])")


def open_state(source, *, allow_pickle: Optional[bool] = None) -> StateDict:
    """A StateDict from a file, a Hugging Face folder, or a StateDict (returned as it is).

    Pickled Python objects besides tensors are refused unless `allow_pickle` (default: the
    exporter's --allow-pickle, passed through FREEBIND_EXPORT_ALLOW_PICKLE)."""
    if isinstance(source, StateDict):
        return source
    if allow_pickle is None:
        allow_pickle = os.environ.get("FREEBIND_EXPORT_ALLOW_PICKLE") == "1"
    path = os.fspath(source)
    if os.path.isdir(path):
        return _read_folder(path, allow_pickle)
    if not os.path.isfile(path):
        raise CheckpointError(f"'{path}' does not exist")
    tensors, extras = _read_file(path, allow_pickle)
    return StateDict(tensors, path, extras=extras)


# ---------------------------------------------------------------------------------------------
# Layouts (key → shape) and meta checkpoints


def layout_of(state: StateDict) -> dict[str, list[int]]:
    return {k: list(state[k].shape) for k in sorted(state)}


def meta_state(layout: Mapping[str, Iterable[int]], source: str) -> StateDict:
    """A StateDict whose tensors have the layout's shapes on the `meta` device (no memory)."""
    return StateDict({k: torch.empty(tuple(s), device="meta") for k, s in layout.items()}, source)


def read_layout(path: str) -> dict[str, list[int]]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["keys"]


# ---------------------------------------------------------------------------------------------
# Loading by exact keys


def load_exact(module: torch.nn.Module, state: StateDict, *, what: str, tolerate: Iterable[str] = (),
               prefixes: Sequence[tuple[str, str]] = (), infinite_ok: Iterable[str] = ()) -> None:
    """Copies `state` into `module` (float32), key by key.

    Every parameter and persistent buffer of the module must be in the checkpoint with its exact
    shape, and every checkpoint key must be used, except those matching a `tolerate` pattern
    (fnmatch, e.g. 'modality_trunks.depth.*'). `prefixes` renames: (checkpoint prefix, module prefix)
    pairs, first match wins; other keys keep their names. Messages name checkpoint keys. NaN or ±inf in a tensor is damage, except in the keys listed in
    `infinite_ok` (an additive attention mask holds -inf by design). Raises CheckpointError naming
    each offending key.
    """
    expected = module.state_dict(keep_vars=True)
    provided: dict[str, str] = {}
    unexpected = []
    patterns = list(tolerate)
    infinite_ok = set(infinite_ok)
    def swap(key: str, pairs) -> str:
        for a, b in pairs:
            if key.startswith(a):
                return b + key[len(a):]
        return key

    for key in state:
        target = swap(key, prefixes)
        if target not in expected and any(fnmatch.fnmatchcase(key, p) for p in patterns):
            continue
        if target not in expected:
            unexpected.append(state.prefix + key)
        else:
            provided[target] = key
    missing = [swap(k, [(b, a) for a, b in prefixes]) for k in expected if k not in provided]
    misshaped = [f"{state.prefix}{provided[k]} is {list(state[provided[k]].shape)}, expected {list(v.shape)}"
                 for k, v in expected.items() if k in provided and tuple(state[provided[k]].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing {_short(state.prefix + k for k in missing)}")
    if unexpected:
        problems.append(f"unexpected {_short(unexpected)}")
    if misshaped:
        problems.append(f"wrong shape: {_short(misshaped, 3)}")
    if problems:
        raise CheckpointError(f"'{state.source}' does not fit {what}: {'; '.join(problems)}")
    with torch.no_grad():
        for target, key in provided.items():
            src = state[key]
            dst = expected[target]
            if dst.is_meta or src.is_meta:
                continue
            if src.is_floating_point() and key not in infinite_ok and not bool(torch.isfinite(src).all()):
                raise CheckpointError(f"'{state.source}': {state.prefix}{key} holds NaN or infinite values: "
                                      f"the checkpoint is damaged")
            if src.dtype == dst.dtype and src.is_contiguous() and src.device == dst.device:
                dst.data = src  # share, don't copy: a 2.4 GB trunk must not exist twice in memory
            else:
                dst.copy_(src.to(dst.dtype))
