#!/usr/bin/env bash
# Debian ships `python3.11 -m venv` in a separate package; install it when venv creation fails.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3.11-venv >/dev/null
rm -rf .venv
