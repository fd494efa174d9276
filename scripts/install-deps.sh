#!/usr/bin/env bash
# Installs what the reference implementation and the generated test models need (Debian packages).
# Idempotent: does nothing when everything is present. Root (or sudo) is required for apt.
set -euo pipefail
pkgs=(python3-torch python3-torchaudio python3-torchvision python3-onnx python3-numpy python3-scipy
      python3-sentencepiece python3-pil python3-regex libopenblas0-pthread)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
