#!/bin/sh
# bench/rle/run.sh — RLE decoding, pneumoseg against numpy, in one run.
#
#   bench/rle/run.sh BUILD_DIR [CSV]
#
# Builds bench_rle in BUILD_DIR (configure it with -DCMAKE_BUILD_TYPE=Release),
# then decodes CSV — by default the real SIIM train file from ../shared, or,
# when it is absent, a generated file of the same size (12,954 rows, 3,576
# with a mask, 1024x1024) — with pneumoseg (bench_rle, best of 5) and with
# numpy (numpy_decode.py, best of 3), and prints rows/s of each and the
# ratio, by wall time and by process CPU time (the steadier one on a shared
# machine). Both must report the same foreground pixel total.
# numpy: Debian's python3-numpy (PYTHON defaults to /usr/bin/python3).
set -eu
build=${1:?usage: run.sh BUILD_DIR [CSV]}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
csv=${2:-$root/../shared/realdata/siim/siim-pneumothorax-train-rle.csv}

cmake --build "$build" --target bench_rle >/dev/null 2>&1
bin="$build/bench/rle/bench_rle"
if [ ! -r "$csv" ]; then
    csv="$build/bench/rle/generated-train-rle.csv"
    [ -r "$csv" ] || "$bin" generate "$csv"
    echo "real CSV absent: using the generated $csv"
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "csv: $csv ($(wc -c <"$csv") bytes)"
c_out=$("$bin" decode "$csv" 1024x1024 5)
py_out=$("$python" "$here/numpy_decode.py" "$csv" 1024x1024 3)
echo "$c_out"
echo "$py_out"
field() { echo "$1" | awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
np_rate=$(field "$py_out" rows_per_s)
np_cpu_rate=$(field "$py_out" rows_per_cpu_s)
np_pixels=$(field "$py_out" foreground_pixels)
echo "$c_out" | while read -r line; do
    mode=$(echo "$line" | awk '{print $2}')
    rate=$(field "$line" rows_per_s)
    cpu_rate=$(field "$line" rows_per_cpu_s)
    pixels=$(field "$line" foreground_pixels)
    [ "$pixels" = "$np_pixels" ] || echo "MISMATCH: foreground pixels $pixels (pneumoseg $mode) vs $np_pixels (numpy)"
    awk -v a="$rate" -v b="$np_rate" -v c="$cpu_rate" -v d="$np_cpu_rate" -v m="$mode" \
        'BEGIN { printf "ratio pneumoseg %s / numpy: %.1fx wall, %.1fx CPU\n", m, a / b, c / d }'
done
