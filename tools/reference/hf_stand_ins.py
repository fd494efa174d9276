"""What upstream_hf.py and upstream_hf_image.py share to run HF transformers' own files outside the package.

Ours, not upstream's: small stand-ins for `transformers.utils` pieces that the upstream files import (ExplicitEnum,
TensorType, a logger with `warning_once`), the helper that installs a stand-in module, and the check that each
upstream file is the one its script names (path, commit, SHA-256) before anything of it runs.
"""

import enum
import hashlib
import logging
import os
import sys
import types


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def module(name, **attrs):
    """Installs a stand-in module under `name` (in sys.modules) with these attributes."""
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


class ExplicitEnum(str, enum.Enum):
    @classmethod
    def _missing_(cls, value):
        raise ValueError(f"{value} is not a valid {cls.__name__}, please select one of {list(cls._value2member_map_.keys())}")


class TensorType(ExplicitEnum):
    PYTORCH = "pt"
    TENSORFLOW = "tf"
    NUMPY = "np"
    JAX = "jax"


def logger_factory(warning_once):
    """`transformers.utils.logging.get_logger` whose loggers call `warning_once(message)` for upstream's warning_once."""
    class Logger(logging.Logger):
        def warning_once(self, *args, **kwargs):
            warning_once(args[0] if args else "")

    def get_logger(name):
        logging.setLoggerClass(Logger)
        logger = logging.getLogger(name)
        logging.setLoggerClass(logging.Logger)
        return logger
    return get_logger


def check_upstream_files(transformers_dir, files):
    """Stops unless every file of `files` ({path: (commit, sha256)}) is under `transformers_dir` with that digest."""
    for path, (commit, digest) in files.items():
        full = os.path.join(transformers_dir, path)
        if not os.path.isfile(full):
            raise SystemExit(f"{full} is missing: write huggingface/transformers src/transformers/{path} at {commit[:7]} there")
        if sha256(full) != digest:
            raise SystemExit(f"{full} is not huggingface/transformers src/transformers/{path} at {commit[:7]} (SHA-256 differs)")
