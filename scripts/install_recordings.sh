#!/usr/bin/env bash
# Install real recorded voices for measuring adaptation on people: the Asterisk telephony prompts.
#
# Five voices recorded by professional voice talents (CC-BY-SA 3.0), about 550 prompts each with transcripts, as
# 16 kHz G.722 (Debian asterisk-core-sounds-<lang>-g722; the transcripts are in asterisk-core-sounds-<lang>):
# US English and Mexican Spanish (Allison Smith), Canadian French (June Wallack), Italian (Carlo), Russian.
# About 55 MB. The G.722 decoder is the pip package G722 (in the package's `evaluation` extra).
#
# Usage:  sudo scripts/install_recordings.sh && hf-metatts import-prompts --out data/prompts
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=()
for lang in en es fr it ru; do
  PACKAGES+=("asterisk-core-sounds-$lang" "asterisk-core-sounds-$lang-g722")
done

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
python -m pip install -q "G722>=1.2,<2"

echo "Installed: ${PACKAGES[*]} and the G722 decoder"
