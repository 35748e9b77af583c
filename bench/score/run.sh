#!/bin/sh
# bench/score/run.sh — what `pneumoseg score` costs per image, by stage.
#
#   bench/score/run.sh BUILD_DIR MODEL [DICOM_DIR] [ROUNDS]
#
# Scores DICOM_DIR (default sample_dicom/dicom-images-test) with MODEL in
# three configurations — masks only (--no-seg --no-overlay), the defaults
# (SEG + 512-pixel PNG overlay), and everything (+ Secondary Capture,
# + horizontal-flip TTA) — each into a fresh database, ROUNDS times
# (default 3). Prints the wall time, the CPU time of the process and its
# reaped children (decode workers, header readers), and the mean per-image
# milliseconds the predictions table records (decode in the worker,
# inference share of the batch, postprocess + writing).
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR MODEL [DICOM_DIR] [ROUNDS]}
MODEL=${2:?usage: run.sh BUILD_DIR MODEL [DICOM_DIR] [ROUNDS]}
DIR=${3:-sample_dicom/dicom-images-test}
ROUNDS=${4:-3}
PNEUMOSEG="$BUILD/pneumoseg"
WORK=$(mktemp -d /tmp/pnx-bench-score-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
printf 'stages: [score]\nscore:\n  dicom_dir: %s\n' "$DIR" > "$WORK/score.yaml"

run() {
    name=$1
    shift
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        rm -rf "$WORK/out" "$WORK/db.sqlite"*
        /usr/bin/time -f '%e %U %S' -o "$WORK/time" \
            "$PNEUMOSEG" score "$DIR" --model "$MODEL" --db "$WORK/db.sqlite" --out "$WORK/out" \
            --config "$WORK/score.yaml" -q "$@" > /dev/null || [ $? -eq 2 ]
        read -r wall user sys < "$WORK/time"
        stats=$(sqlite3 "$WORK/db.sqlite" "SELECT COUNT(*), round(avg(decode_ms),1),
                 round(avg(infer_ms),1), round(avg(post_ms),1)
                 FROM predictions WHERE status = 'ok'")
        echo "$name round $i: wall ${wall}s cpu $(echo "$user + $sys" | bc)s;" \
             "images|decode|infer|post ms: $stats"
        i=$((i + 1))
    done
}

run masks-only --no-seg --no-overlay
run defaults
run everything --sc --tta-hflip
