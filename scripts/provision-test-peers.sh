#!/usr/bin/env bash
# Installs and starts the real peers the test suite talks to, when they are missing:
# dcmtk + dicom3tools (DICOM tools), orthanc (demo PACS), redis-server, postgresql, openssl,
# chromium and chromium-driver (the dashboard test's headless browser).
# Idempotent and quiet when everything is already there. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
command -v storescu  >/dev/null || need+=(dcmtk)
command -v dciodvfy  >/dev/null || need+=(dicom3tools)
command -v Orthanc   >/dev/null || need+=(orthanc)
command -v redis-server >/dev/null || need+=(redis-server)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v openssl   >/dev/null || need+=(openssl)
command -v chromium  >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)

if [ ${#need[@]} -gt 0 ]; then
  echo "provision: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  # Debian starts orthanc as a system service on 4242/8042; the tests run their own on free ports.
  if [[ " ${need[*]} " == *" orthanc "* ]]; then
    $SUDO systemctl disable --now orthanc >/dev/null 2>&1 || $SUDO service orthanc stop >/dev/null 2>&1 || true
  fi
fi

# PostgreSQL: the suite expects 127.0.0.1:5432 with database `test` reachable without a
# password (as on the project's machines), unless BONEAGE_TEST_POSTGRES_URL says otherwise.
if [ -z "${BONEAGE_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    ver=$(ls /etc/postgresql | sort -n | tail -1)
    echo "provision: starting PostgreSQL $ver"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -n | tail -1)
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    echo "provision: allowing trust auth for 127.0.0.1 in $hba (test machine only)"
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    sleep 1
    psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null
  fi
fi
