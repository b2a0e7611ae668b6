#!/usr/bin/env bash
# Quickstart: set everything up, then play a built-in song with the zero-training sight-reader.
# Writes runs/quickstart/metrics.json and runs/quickstart/performance.mp4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pianomime play "${1:-TwinkleTwinkleRousseau}" --out "${2:-runs/quickstart}"
