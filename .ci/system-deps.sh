#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when something is missing.
set -euo pipefail
PACKAGES=(chromium fonts-noto-cjk ffmpeg espeak-ng baresip libmagic1 tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim dovecot-imapd openssl)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
