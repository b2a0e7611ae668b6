#!/usr/bin/env bash
# Set up (with the dev, corpus, video, datasets, distributed, audio, docs and train extras), lint, build
# the documentation site in strict mode, and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,corpus,video,datasets,distributed,audio,docs,train
.venv/bin/ruff check .
.venv/bin/ruff format --check .
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir build/site  # a broken link or a page left out of the nav fails
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
