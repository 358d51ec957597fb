#!/usr/bin/env bash
# make bench-solver: the project's solver beside LEMON's Preflow and networkx's
# preflow_push on the same generated instances. Prints, per case and tool, the
# whole-process wall time and peak RSS (/usr/bin/time -v) and the ratio project/LEMON.
# Never a timed test: numbers only. CASES="a b" limits the cases; NX_MAX_ARCS the size
# of graph networkx is given (default 1e6 arcs); LEMON_MAX_ARCS likewise (default 3e7).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK="$ROOT/.cache/bench-solver"
mkdir -p "$WORK"
cd "$ROOT"

need=()
[ -f /usr/include/lemon/preflow.h ] || need+=(liblemon-dev)
python3 -c 'import networkx' 2>/dev/null || need+=(python3-networkx)
[ -x /usr/bin/time ] || need+=(time)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian)" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
[ -f dist/bench/solver/gen.js ] || npx tsc -p tsconfig.build.json
LEMON="$WORK/lemon_solve"
if [ ! -x "$LEMON" ] || [ bench/solver/lemon_solve.cpp -nt "$LEMON" ]; then
  g++ -O2 -std=c++17 -o "$LEMON" bench/solver/lemon_solve.cpp -llemon 2>/dev/null ||
    g++ -O2 -std=c++17 -o "$LEMON" bench/solver/lemon_solve.cpp
fi
NX_MAX_ARCS=${NX_MAX_ARCS:-1000000}
LEMON_MAX_ARCS=${LEMON_MAX_ARCS:-50000000}
CASES=${CASES:-$(node dist/bench/solver/gen.js --list | cut -f1)}

# measure OUT command...: prints "wall_s rss_mb cpu_s" or "skip"/"fail"
measure() {
  local out=$1; shift
  local tv="$out.time"
  if /usr/bin/time -v -o "$tv" "$@" >"$out" 2>"$out.err"; then
    local wall rss cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tv" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$tv")
    cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$tv")
    echo "$wall $rss $cpu"
  else
    if grep -q '^skip' "$out.err" 2>/dev/null || grep -q 'exit status 3' "$tv"; then echo skip; else echo fail; fi
  fi
}
total_of() { head -c 200 "$1" | sed -n 's/^{"total":\([0-9]*\).*/\1/p'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
printf '| case | n | bounds | project wall s (cpu s) | project MB | pcloud solve wall s | LEMON wall s (cpu s) | LEMON MB | project/LEMON wall (cpu) | networkx wall s | networkx MB | totals agree |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for c in $CASES; do
  line=$(node dist/bench/solver/gen.js --list | awk -F'\t' -v c="$c" '$1==c')
  n=$(echo "$line" | cut -f2); k=$(echo "$line" | cut -f3); nb=$(echo "$line" | cut -f4)
  inst="$WORK/$c.json"
  [ -s "$inst" ] || node dist/bench/solver/gen.js "$c" "$inst"
  # the project: the lean solve entry, and the whole pcloud CLI (which loads more modules)
  read -r pw pm pc <<<"$(measure "$WORK/$c.project.out" node dist/cli/solve-main.js --instance "$inst")"
  read -r fw _ _ <<<"$(measure "$WORK/$c.pcloud.out" node dist/cli/pcloud.js solve --instance "$inst")"
  # LEMON's graph: gadget O(n), expanded n^2 for a finite default, listed bounds for 0
  arcs=$(python3 -c "n=$n;k='$k';b=$nb;print(4*n+2*n*n.bit_length() if k=='null' else (n*n if k!='0' else 2*n+b))")
  if [ "$arcs" -le "$LEMON_MAX_ARCS" ]; then
    read -r lw lm lc <<<"$(measure "$WORK/$c.lemon.out" "$LEMON" "$inst")"
  else lw=skip; lc=""; lm="($arcs arcs)"; fi
  read -r xw xm _ <<<"$(measure "$WORK/$c.nx.out" python3 bench/solver/nx_solve.py "$inst" "$NX_MAX_ARCS")"
  [ "$xw" = skip ] && xm="-"
  pt=$(total_of "$WORK/$c.project.out")
  agree="project $pt"
  ratio="-"
  if [[ "$lw" =~ ^[0-9.]+$ ]]; then
    lt=$(total_of "$WORK/$c.lemon.out"); agree="$agree, LEMON $([ "$lt" = "$pt" ] && echo "=" || echo "≠ $lt")"
    ratio=$(python3 -c "print(f'{$pw/max($lw,0.01):.2f} ({$pc/max($lc,0.01):.2f})')")
  fi
  if [[ "$xw" =~ ^[0-9.]+$ ]]; then
    xt=$(total_of "$WORK/$c.nx.out"); agree="$agree, networkx $([ "$xt" = "$pt" ] && echo "=" || echo "≠ $xt")"
  fi
  lcol="$lw"; [ -n "${lc:-}" ] && lcol="$lw ($lc)"
  printf '| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$n" "$nb" "$pw" "$pc" "${pm:-}" "$fw" "$lcol" "${lm:-}" "$ratio" "$xw" "${xm:-}" "$agree"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
