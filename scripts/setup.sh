#!/usr/bin/env bash
# Installs hf-metatts and everything its main job needs, on a fresh Debian machine with Python 3.10+.
#   bash scripts/setup.sh          # the package, evaluation metrics, Debian flite voices and text
#   bash scripts/setup.sh --dev    # ... plus the test tools
# torch comes first and pinned: a plain `pip install torch` would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

PIP="python -m pip install --disable-pip-version-check -q"
$PIP "torch==2.13.0"
$PIP "setuptools<81" wheel cython "numpy>=1.24,<3"
EXTRAS="evaluation,demo"
[ "$DEV" = 1 ] && EXTRAS="evaluation,demo,tests"
$PIP -e ".[${EXTRAS}]"
# The speaker encoder ships its weights in its wheel; its pinned dependencies would break the stack.
$PIP --no-deps "resemblyzer>=0.1.4"
# pysptk (mel-cepstra for MCD) fails to build in an isolated environment.
$PIP --no-build-isolation "pysptk>=1.0,<2"

# Debian voices and human-written sentences for the corpus and the metric tests (about 30 MB).
if command -v apt-get >/dev/null 2>&1; then
  MINIMAL=1 bash scripts/install_synthesizers.sh
  # The demo's browser tests drive Debian's chromium with Playwright (never `playwright install`).
  if [ "$DEV" = 1 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  fi
fi
python -c "import hf_metatts, torch; print('hf-metatts', hf_metatts.__version__, 'with torch', torch.__version__)"
