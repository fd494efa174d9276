#!/usr/bin/env bash
# The main job on embedded defaults. Installs what it needs and starts Postgres+pgvector and Redis
# on loopback (scripts/services.sh, as the tests do); you set up nothing. Then:
#  1. embeds the three sample images, audios and captions into ImageBind++ and prints the
#     cross-modal similarity matrices for the two upstream presets, as upstream's inference.py does;
#  2. `freebind demo`: streams the same media as Kafka events through an embedded Kafka into the
#     worker (→ pgvector, Redis, tags) and prints each item's tags and nearest neighbours; then
#     switches the space to the at-expertise preset, lets the re-embedding saga (in-memory transport)
#     plan, backfill (a pure re-fusion from the stored atoms), verify and cut over, and prints a few
#     items' neighbours before and after. It works in its own database (freebind_demo), recreated
#     at every run.
#
# With your own ONNX exports (docs/export.md) in $FREEBIND_MODELS, it uses them; otherwise it
# generates the small stand-in models of the test suite (random weights: the matrices show the
# pipeline working, not meaningful similarities) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${FREEBIND_SHARED:-$root/../shared}
media=$shared/media/freebind-samples
space=${FREEBIND_SPACE:-imagebind++}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [ -n "${FREEBIND_MODELS:-}" ]; then
  models=$FREEBIND_MODELS
  echo "Using your models in $models"
else
  scripts/install-deps.sh
  models=${FREEBIND_TESTDATA:-$root/.work/testdata}/models
  echo "No real models configured (FREEBIND_MODELS is empty): generating the stand-in demo space in $models."
  echo "Its encoders and projectors have random weights, so the numbers below show the pipeline, not real similarities."
  /usr/bin/python3 tools/reference/generate_models.py --out "$models"
fi

# Stop on exit only what this run started (services already running stay up).
case "$(scripts/services.sh status)" in *stopped*) trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT ;; esac
scripts/services.sh start
eval "$(scripts/services.sh env)"

dotnet build src/Consumers -c Release --nologo -v quiet
freebind="dotnet src/Consumers/bin/Release/net10.0/freebind.dll"
echo; echo "== 1. similarity matrices (freebind embed)"
$freebind embed --space "$space" --models "$models" \
  --preset versatile --preset at-expertise \
  --audio "$media/BBQ.wav" --audio "$media/toilet.wav" --audio "$media/train.wav" \
  --image "$media/BBQ.jpeg" --image "$media/toilet.jpeg" --image "$media/train.jpeg" \
  --text "an audio of barbeque" --text "an audio of toilet" --text "an audio of train"

echo; echo "== 2. streaming, then a space update (freebind demo: embedded Kafka → worker → pgvector + Redis + tags; preset switch → re-embedding saga → cut-over)"
$freebind demo --space "$space" --models "$models" --media "$media"
