"""The product's own command line, used for every check the tool makes.

onnxruntime is not installable in Debian's Python, so ONNX files are run by `freebind onnx-run`
(the product's ONNX Runtime and session settings), real media is turned into model tensors by
`freebind preprocess` (the product's preprocessing), and the model root is judged by
`freebind spaces validate`. Checks run on the CPU provider: they judge the file, not the GPU.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from typing import Sequence

import numpy as np

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_DLL = os.path.join(REPO, "src", "Consumers", "bin", "Release", "net10.0", "freebind.dll")


class ProductError(Exception):
    """The product refused something (its own one-line error is in the message)."""


class Product:
    def __init__(self, command: str | None, spaces_dir: str):
        if command:
            self.argv = shlex.split(command)
        elif os.path.isfile(DEFAULT_DLL):
            self.argv = ["dotnet", DEFAULT_DLL]
        else:
            raise ProductError("the checks run the product's CLI, which is not built: run "
                               "`dotnet build src/Consumers -c Release` (or pass --freebind-cli)")
        self.env = dict(os.environ, Onnx__ExecutionProvider="cpu",
                        Spaces__ManifestDirectory=os.path.abspath(spaces_dir), DOTNET_NOLOGO="1",
                        Logging__LogLevel__Default="Warning")
        self._serve: subprocess.Popen | None = None
        self._serve_log = None
        self.provider: str | None = None  # the execution provider onnx-run reported

    def describe(self) -> dict:
        """What ran the checks, for export.json: the command, the build (its freebind.dll's SHA-256 and
        time) and the ONNX Runtime package it was built with (from freebind.deps.json)."""
        d: dict = {"command": self.argv, "execution_provider": self.provider}
        dll = next((a for a in self.argv if a.endswith(".dll") and os.path.isfile(a)), None)
        if dll is None:
            return d
        import hashlib
        from datetime import datetime, timezone
        with open(dll, "rb") as f:
            d["dll_sha256"] = hashlib.sha256(f.read()).hexdigest()
        d["dll_built_utc"] = datetime.fromtimestamp(os.path.getmtime(dll), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        deps = os.path.splitext(dll)[0] + ".deps.json"
        if os.path.isfile(deps):
            with open(deps, encoding="utf-8") as f:
                libraries = json.load(f).get("libraries", {})
            d["onnxruntime"] = sorted(k.replace("/", " ") for k in libraries
                                      if k.startswith("Microsoft.ML.OnnxRuntime") and "Managed" not in k)
        return d

    def _run(self, args: Sequence[str], what: str) -> str:
        p = subprocess.run(self.argv + list(args), env=self.env, capture_output=True, text=True)
        if p.returncode != 0:
            lines = [l for l in (p.stderr + p.stdout).splitlines() if l.strip()]
            detail = next((l for l in lines if l.startswith("error:")), lines[-1] if lines else "no output")
            raise ProductError(f"{what}: {detail}")
        return p.stdout

    def _server(self) -> subprocess.Popen:
        # One `onnx-run --serve` process answers every model of the export (a process per file
        # would cost a runtime start each).
        if self._serve is None or self._serve.poll() is not None:
            self._serve_log = tempfile.TemporaryFile(mode="w+")
            self._serve = subprocess.Popen(self.argv + ["onnx-run", "--serve"], env=self.env, text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._serve_log)
        return self._serve

    def close(self) -> None:
        if self._serve is not None and self._serve.poll() is None:
            self._serve.stdin.close()
            self._serve.wait(timeout=60)
            self._serve.stdout.close()
        if self._serve_log is not None:
            self._serve_log.close()
        self._serve = self._serve_log = None

    def __enter__(self) -> "Product":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run_onnx(self, model: str, batches: Sequence[Sequence[tuple[str, np.ndarray]]]) -> tuple[list[np.ndarray], list[float]]:
        """Runs `model` once per batch (one session); returns each first output and its run time."""
        with tempfile.TemporaryDirectory(prefix="freebind-export-") as tmp:
            runs = []
            for b, feeds in enumerate(batches):
                inputs = {}
                for name, array in feeds:
                    p = os.path.join(tmp, f"{b}.{name}.npy")
                    np.save(p, np.ascontiguousarray(array))
                    inputs[name] = p
                runs.append({"inputs": inputs, "output": os.path.join(tmp, f"{b}.out.npy")})
            server = self._server()
            server.stdin.write(json.dumps({"model": os.path.abspath(model), "runs": runs}) + "\n")
            server.stdin.flush()
            line = server.stdout.readline()
            if not line:
                self._serve_log.seek(0)
                tail = [l for l in self._serve_log.read().splitlines() if l.strip()][-3:]
                self._serve = None
                raise ProductError(f"ONNX Runtime on {model}: the product's runner stopped ({' '.join(tail) or 'no output'})")
            try:
                answer = json.loads(line)
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or "ok" not in answer:
                server.kill()  # it does not speak this protocol: do not wait for it
                server.wait()
                server.stdin.close()
                server.stdout.close()
                self._serve = None
                raise ProductError(f"the product at {' '.join(self.argv)} is older than this tool (its onnx-run answered "
                                   f"{line.strip()[:60]!r}): rebuild it (dotnet build src/Consumers -c Release)")
            self.provider = answer.get("provider", self.provider)
            if not answer.get("ok"):
                raise ProductError(f"ONNX Runtime on {model}: {answer.get('error')}")
            return [np.load(r["output"]) for r in runs], list(answer["seconds"])

    def preprocess(self, profile: str, tokenizers: Sequence[str], item: str, input_names: Sequence[str]) -> list[np.ndarray]:
        """The tensors the product feeds the model for one media file (or text), one per input."""
        with tempfile.TemporaryDirectory(prefix="freebind-export-") as tmp:
            out = os.path.join(tmp, "x.npy")
            args = ["preprocess", "--profile", profile, "--output", out]
            for tok in tokenizers:  # one option per file: `--tokenizer a b` is refused by the CLI
                args += ["--tokenizer", tok]
            self._run(args + ["--", item], f"preprocessing {os.path.basename(item) if os.path.exists(item) else repr(item)}")
            arrays = [np.load(out)]
            for name in input_names[1:]:
                arrays.append(np.load(os.path.join(tmp, f"x.{name}.npy")))
            return arrays

    def validate(self, models: str, spaces: Sequence[str]) -> tuple[bool, str]:
        """`freebind spaces validate` on each space; (all ok, the report)."""
        ok, report = True, []
        for space in spaces:
            p = subprocess.run(self.argv + ["spaces", "validate", "--space", space, "--models", models],
                               env=self.env, capture_output=True, text=True)
            ok &= p.returncode == 0
            report.append(p.stdout.strip() or p.stderr.strip())
        return ok, "\n".join(report)

    def embed(self, models: str, space: str, images: Sequence[str], audios: Sequence[str], texts: Sequence[str],
              output: str) -> None:
        args = ["embed", "--space", space, "--models", models, "--output", output]
        for i in images:
            args += ["--image", i]
        for a in audios:
            args += ["--audio", a]
        for t in texts:
            args += ["--text", t]
        self._run(args, f"embedding the samples in {space}")
