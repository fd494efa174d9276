#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the Debian packages it needs,
# generates the stand-in models and the reference outputs, starts the services the tests use on
# loopback, runs every test, and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export FREEBIND_TESTDATA=${FREEBIND_TESTDATA:-$root/.work/testdata}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
PY=/usr/bin/python3   # Debian's python: python3-torch & co. are not visible to a pyenv python

step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies"
scripts/install-deps.sh

step "build"
dotnet build FreeBind.Pipeline.sln -c Release -warnaserror --nologo -v quiet

step "reference data"
$PY tools/reference/generate_models.py --out "$FREEBIND_TESTDATA/models"
$PY tools/reference/expected_fusion.py --models "$FREEBIND_TESTDATA/models" --out "$FREEBIND_TESTDATA"
$PY tools/reference/make_tokenizers.py --out "$FREEBIND_TESTDATA"
$PY tools/reference/preprocess_image_text.py --out "$FREEBIND_TESTDATA"
$PY tools/reference/preprocess_audio.py --out "$FREEBIND_TESTDATA"
$PY tools/reference/expected_standin.py --models "$FREEBIND_TESTDATA/models" --out "$FREEBIND_TESTDATA"

step "export tool (tools/export/tests: random-weight upstream checkpoints → ONNX → the product)"
pylog=$(mktemp)
set +e
$PY -m unittest discover -s tools/export/tests -t tools/export -v 2>&1 | tee "$pylog"
pystatus=${PIPESTATUS[0]}
set -e

if [ -x scripts/services.sh ]; then
  step "services"
  # Stop on exit only what this run started (a developer's running services stay up).
  case "$(scripts/services.sh status)" in *stopped*) trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT ;; esac
  scripts/services.sh start
  eval "$(scripts/services.sh env)"
fi

step "tests"
kernel_lines=$( (dmesg 2>/dev/null || true) | wc -l)   # to name an out-of-memory kill of the test host below
log=$(mktemp)
set +e
dotnet test FreeBind.Pipeline.sln -c Release --no-build --nologo --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain summary line for CI: "N passed, N failed".
# (awk, not grep: a run with no failure prints no "Failed:" line, and grep would fail the script.)
passed=$(awk '/^ +Passed: +[0-9]+$/ {s+=$2} END {print s+0}' "$log")
failed=$(awk '/^ +Failed: +[0-9]+$/ {s+=$2} END {print s+0}' "$log")
# unittest's own summary: "Ran N tests" and, when something fails, "FAILED (failures=F, errors=E)".
pyran=$(awk '/^Ran [0-9]+ tests? in/ {print $2}' "$pylog")
pyfailed=$(awk -F'[=,)]' '/^FAILED \(/ {for (i = 1; i < NF; i++) if ($i ~ /(failures|errors)$/) s += $(i + 1)} END {print s+0}' "$pylog")
rm -f "$log" "$pylog"
passed=$((passed + ${pyran:-0} - pyfailed))
failed=$((failed + pyfailed))
echo "$passed passed, $failed failed"
# A test host that aborts (a native crash) leaves no "Failed:" line: say so rather than look green.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # vstest's abort message quotes only the first 8 KB of the host's stderr (log lines from the first
  # minutes), never its last words; a kill leaves none anyway. The aborts seen so far were the kernel's
  # out-of-memory killer on a machine shared with other jobs: name such a kill when dmesg is readable.
  echo "dotnet test ended with exit code $status and no failed test: the test host stopped early (the lines it quotes are the start of its stderr, not where it stopped)"
  (dmesg 2>/dev/null || true) | tail -n +$((kernel_lines + 1)) | grep -E "Out of memory: Killed process [0-9]+ \(dotnet\)" || true
fi
[ "$pystatus" -eq 0 ] || exit "$pystatus"
exit "$status"
