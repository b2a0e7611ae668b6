#!/usr/bin/env bash
# Set up (with the dev, corpus, video, datasets and distributed extras), lint, and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,corpus,video,datasets,distributed,train
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
