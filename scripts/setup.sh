#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for whisperforge: system packages, then Python packages.
#   scripts/setup.sh            # both (apt-get as root, or through sudo)
#   scripts/setup.sh --python   # Python packages only
# System: espeak-ng, sox, ffmpeg (the demo's data and the tests' audio), graphviz (DAG pictures),
# slurm-wlm and munge (the one-node SLURM test). Python: torch 2.13.0 (on PyPI a CUDA build for
# Linux x86_64; a CPU build where one lies on disk), then the versions tested together.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--python" ]; then
  needed=()
  for pair in espeak-ng:espeak-ng sox:sox ffmpeg:ffmpeg dot:graphviz slurmctld:slurm-wlm \
      munged:munge; do
    command -v "${pair%%:*}" >/dev/null || needed+=("${pair#*:}")
  done
  if [ "${#needed[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
  fi
fi

python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -r requirements-dev.txt
python3 -m pip install -q --no-deps -e .
