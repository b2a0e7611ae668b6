#!/usr/bin/env bash
# Set up (with the dev, corpus, video, datasets, distributed, audio, docs and train extras), lint, build
# the documentation site in strict mode, and run the test suite (every test, slow ones included).
#   bash scripts/test.sh                 # what CI runs
#   bash scripts/test.sh --fast [ARGS]   # development loop: no setup, no site, tests not marked slow
#   bash scripts/test.sh tests/test_env.py -x   # other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  [ -x .venv/bin/python ] || { echo "test.sh --fast: no .venv yet; run bash scripts/test.sh once" >&2; exit 1; }
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  exec .venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow" "$@"
fi
bash scripts/setup.sh dev,corpus,video,datasets,distributed,audio,docs,train
.venv/bin/ruff check .
.venv/bin/ruff format --check .
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir build/site  # a broken link or a page left out of the nav fails
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
