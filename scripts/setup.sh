#!/usr/bin/env bash
# Sets up everything pianomime-env needs on a Debian/Ubuntu machine, idempotently:
# system packages (as root), a virtual environment in .venv, the package (+ extras), and the
# compiled scene cache. Usage: bash scripts/setup.sh [EXTRAS]   e.g. bash scripts/setup.sh dev,corpus
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

# portaudio + fluidsynth: robopianist's audio deps (pyaudio builds against portaudio);
# EGL/OSMesa + mesa drivers: offscreen rendering without a display.
apt_packages=(portaudio19-dev libfluidsynth3 libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libopengl0 libosmesa6)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
      exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# pip's and setuptools' chatter (index warnings, the editable-install notice) goes to a log that
# is shown only if the install fails.
log=.venv/setup-pip.log
quiet_pip() {
  if ! .venv/bin/python -m pip "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip $* failed (log above, also in $log)" >&2
    exit 1
  fi
}
quiet_pip install -q --upgrade pip
spec="."
[ -n "$extras" ] && spec=".[$extras]"
echo "setup: installing pianomime-env ($spec) into .venv"
quiet_pip install -q -e "$spec"
.venv/bin/python -c "import pianomime_env" # fail here, not later, if the install is broken
# Compile the scene once (≈ 3 s each); every later env construction loads it in tens of ms.
.venv/bin/python -c "from pianomime_env.sim import scene; scene.load_model(); scene.load_model(reduced_action_space=True)"
echo "setup: done (.venv ready)"
