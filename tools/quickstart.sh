#!/usr/bin/env bash
# tools/quickstart.sh — set up, build and run pneumoseg on a fresh Debian 12.
#
#   bash tools/quickstart.sh run    install what is missing, build, run
#                                   pipeline.yaml on sample_dicom/
#   bash tools/quickstart.sh test   install what is missing, build, run ctest
#
# Installs only the Debian packages that are missing (apt-get update first,
# only then), configures build/ once, rebuilds what changed. Run as root, or
# as a user who can sudo, or with every package already present.
# BUILD_DIR and BUILD_TYPE may be set in the environment.
set -euo pipefail

mode="${1:-}"
case "$mode" in
  run|test) ;;
  *) echo "usage: bash tools/quickstart.sh run|test" >&2; exit 1 ;;
esac

cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-RelWithDebInfo}"

packages=(
  build-essential cmake pkg-config git
  libdcmtk-dev dcmtk          # DICOM reading, SEG writing, dcmdump
  libpng-dev                  # PNG overlays and masks
  libsqlite3-dev sqlite3      # the ledger
  libyaml-dev                 # pipeline.yaml
  libcmocka-dev               # tests
  libssl-dev                  # SHA-256 (libcrypto)
  libopenblas-dev             # CPU convolutions
  libturbojpeg0-dev           # fast JPEG Baseline decoding
  libjpeg-dev                 # JPEG encoding in the sample generator
  dicom3tools                 # dciodvfy, used by the tests to validate DICOM
  python3 python3-numpy python3-pil  # reference checks in tests and benchmarks
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type"
fi
cmake --build "$build_dir" -j"$(nproc)"

if [ "$mode" = run ]; then
  exec "$build_dir/pneumoseg" run pipeline.yaml
else
  exec ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)"
fi
