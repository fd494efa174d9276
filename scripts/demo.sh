#!/usr/bin/env bash
# The main job on embedded defaults: embeds the three sample images, the three sample audios and
# their captions into ImageBind++ and prints the cross-modal similarity matrices for the two
# upstream presets, as upstream's inference.py does. Installs what it needs; you set up nothing.
#
# With your own ONNX exports (see docs/export.md) in $FREEBIND_MODELS, it uses them; otherwise it
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

dotnet build src/Consumers -c Release --nologo -v quiet
exec dotnet src/Consumers/bin/Release/net10.0/freebind.dll embed --space "$space" --models "$models" \
  --preset versatile --preset at-expertise \
  --audio "$media/BBQ.wav" --audio "$media/toilet.wav" --audio "$media/train.wav" \
  --image "$media/BBQ.jpeg" --image "$media/toilet.jpeg" --image "$media/train.jpeg" \
  --text "an audio of barbeque" --text "an audio of toilet" --text "an audio of train"
