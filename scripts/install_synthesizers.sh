#!/usr/bin/env bash
# Install the Debian speech synthesisers and text packages that `hf-metatts build-corpus` uses.
#
# espeak-ng needs no setup (it ships inside the `espeakng-loader` wheel). This script adds:
#   * flite and its voices (kal16, awb, rms, slt; 16 kHz),
#   * festival with English (kal, ked, slt-hts), Italian, Czech, Finnish, Catalan and (optionally) Russian voices,
#   * Debian fortunes in English, Czech, German, Spanish, Italian and Russian: the human-written sentences; and in
#     Polish, Bulgarian and Irish, the languages the default corpus never trains on (preset unseen_languages).
#     Not fortunes-br: its Portuguese file lies in the top-level folder, which the English sentences are read from.
#
# Usage:  sudo scripts/install_synthesizers.sh            # everything except the 237 MB Russian voice
#         sudo WITH_RUSSIAN=1 scripts/install_synthesizers.sh
#         sudo MINIMAL=1 scripts/install_synthesizers.sh   # fortunes + flite only (about 30 MB)
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

TEXT_PACKAGES=(fortunes fortunes-min fortunes-cs fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-pl fortunes-bg fortunes-ga)
FLITE_PACKAGES=(flite)
FESTIVAL_PACKAGES=(
  festival
  festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  festvox-italp16k festvox-itapc16k
  festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph
  festvox-suopuhe-lj festvox-suopuhe-mv
  festvox-ca-ona-hts
)

PACKAGES=("${TEXT_PACKAGES[@]}" "${FLITE_PACKAGES[@]}")
if [ "${MINIMAL:-0}" != "1" ]; then
  PACKAGES+=("${FESTIVAL_PACKAGES[@]}")
  if [ "${WITH_RUSSIAN:-0}" = "1" ]; then PACKAGES+=(festvox-ru); fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

echo "Installed: ${PACKAGES[*]}"
echo "Check with: python -m hf_metatts.data.cli --list-sources"
