#!/usr/bin/env bash
# The four comparisons on one GPU in at most 8 minutes of wall time, with the papers' recipes at full resolution:
#
#   benchmarks/gpu/campaign.sh OUT            # on the GPU machine: results in OUT/<machine>/, OUT/COMPARISONS.md
#   benchmarks/gpu/campaign.sh OUT --smoke    # the same script on CPU in under 2 minutes (tiny budgets and data)
#   options: --data DIR (datasets; default benchmarks/gpu/data, unpacked from CARRY/data-*/part when absent)
#            --carry DIR (what prepare.py wrote: wheels/, data-*/; default benchmarks/gpu/carry)
#            --minutes M (wall-clock limit of the comparisons, default 7; the rest is set-up and aggregation)
#
# Without network: installs carry/wheels/*.whl into a private folder (pip --no-index --target) when MONAI is not
# importable, and runs the package from this checkout with PYTHONPATH. The four comparisons run as four processes
# side by side on the one GPU, each one job after another (sweeps first, then seed by seed), and start no job that
# would end after the limit; comparisons.py then writes OUT/<machine>/comparisons.json and OUT/COMPARISONS.md.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="" SMOKE=0 DATA="$HERE/data" CARRY="$HERE/carry" MINUTES=7
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --data) DATA="$2"; shift ;;
        --carry) CARRY="$2"; shift ;;
        --minutes) MINUTES="$2"; shift ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) OUT="$1" ;;
    esac
    shift
done
[ -n "$OUT" ] || { echo "usage: $0 OUT [--smoke] [--data DIR] [--carry DIR] [--minutes M]" >&2; exit 2; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python3}"
START=$(date +%s)

# 1. packages: the bundled wheels, only where MONAI is missing
DEPS="$OUT/.pydeps"
if ! "$PY" -c "import monai, matplotlib, tensorboard" 2>/dev/null; then
    [ -d "$CARRY/wheels" ] || { echo "error: MONAI missing and no $CARRY/wheels; run prepare.py" >&2; exit 2; }
    "$PY" -m pip install -q --no-index --no-deps --target "$DEPS" "$CARRY"/wheels/*.whl
fi
export PYTHONPATH="$REPO${DEPS:+:$DEPS}${PYTHONPATH:+:$PYTHONPATH}"

# 2. data: unpack the carried parts once
if [ ! -d "$DATA/acdc" ]; then
    ls "$CARRY"/data-*/part >/dev/null 2>&1 || { echo "error: no $DATA and no $CARRY/data-*/part; run prepare.py" >&2; exit 2; }
    mkdir -p "$DATA"
    cat $(ls "$CARRY"/data-*/part | sort -V) | tar -xJ -C "$DATA"
fi

# 3. the comparisons, side by side
ARGS=(--results-dir "$OUT" --runs-dir "$OUT/runs" --data-root "$DATA")
if [ "$SMOKE" = 1 ]; then
    export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
    # one seed and one sweep point per entry, about 2 s budgets, one step per epoch, a seeded test fraction for
    # ISBI in place of the clean-protocol placeholder; small batches and DS2F at a small HR patch
    ARGS+=(--first 1 --budget-scale 0.05 --set train.iters_per_epoch=1 --set train.batch_size=2
           --set data.num_workers=0 --stand-in data.split.test_fraction=0.2 --quick --machine smoke-cpu)
    MINUTES=30  # every job runs: the smoke test checks the whole path
fi
[ "$SMOKE" = 1 ] || export OMP_NUM_THREADS=4  # four processes share the 16 cores
"$PY" "$REPO/benchmarks/campaign.py" "$HERE"/plans/*.yaml "${ARGS[@]}" --dry-run | grep -v "^  "
PIDS=()
for plan in "$HERE"/plans/*.yaml; do
    name="$(basename "$plan" .yaml)"
    "$PY" "$REPO/benchmarks/campaign.py" "$plan" "${ARGS[@]}" --stop-after "$MINUTES" > "$OUT/$name.log" 2>&1 &
    PIDS+=($!)
done
FAILED=0
for pid in "${PIDS[@]}"; do wait "$pid" || FAILED=1; done
grep -h "^\[\|^stop\|^error" "$OUT"/*.log || true

# 4. comparisons.json and the Markdown table with curves
"$PY" "$REPO/benchmarks/comparisons.py" --plans "$HERE"/plans/*.yaml --results-dir "$OUT" --md "$OUT/COMPARISONS.md" \
    --curves-dir "$OUT/curves"
echo "done in $(( $(date +%s) - START )) s; results in $OUT"
exit $FAILED
