#!/usr/bin/env bash
# 100,000 SNI certificates on one listener: load time, memory per certificate beyond its
# own DER and key (against a one-certificate baseline), and the full-handshake rate for a
# name among the 100,000 compared with the one-certificate listener, same load generator.
#
#   bench/sni.sh [CERTIFICATES] [RUNS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-100000}"
RUNS="${2:-3}"
SECONDS_PER_RUN="${3:-5}"
THREADS="$(nproc)"
cargo build --release --bin certbind --example sni_bench --example handshake_bench >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
# Server pids go to a file: `start` runs in a command substitution (a subshell), where an
# array assignment would not reach the trap.
trap 'while read -r p; do kill "$p" 2>/dev/null || true; done < "$work/pids" 2>/dev/null; rm -rf "$work"' EXIT

start() { # start COUNT -> prints the JSON line, records the server pid
    local port api line
    port="$(free_port)"; api="$(free_port)"
    line="$(target/release/examples/sni_bench --certificates "$1" --port "$port" --api-port "$api" --data-dir "$work/d$1")"
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$line" >>"$work/pids"
    echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d['port']=$port; print(json.dumps(d))"
}
one="$(start 1)"
many="$(start "$COUNT")"
echo "$one"; echo "$many"
port_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["port"])' "$1"; }
rates="$work/rates.jsonl"
for run in $(seq "$RUNS"); do
    r1="$(target/release/examples/handshake_bench --addr "127.0.0.1:$(port_of "$one")" --sni host0.bench.example.com --threads "$THREADS" --seconds "$SECONDS_PER_RUN")"
    rn="$(target/release/examples/handshake_bench --addr "127.0.0.1:$(port_of "$many")" --sni "host$((COUNT / 2 + run)).bench.example.com" --threads "$THREADS" --seconds "$SECONDS_PER_RUN")"
    echo "{\"run\":$run,\"one\":$r1,\"many\":$rn}" | tee -a "$rates"
done
python3 - "$one" "$many" "$rates" <<'PY'
import json, statistics, sys
one, many = json.loads(sys.argv[1]), json.loads(sys.argv[2])
runs = [json.loads(l) for l in open(sys.argv[3])]
r1 = statistics.median(r["one"]["per_second"] for r in runs)
rn = statistics.median(r["many"]["per_second"] for r in runs)
n = many["certificates"]
extra = (many["rss_kib"] - one["rss_kib"]) * 1024 / (n - 1)
print(json.dumps({
    "certificates": n,
    "load_seconds": round(many["load_seconds"], 3),
    "memory_bytes_per_certificate": round(extra),
    "material_bytes_per_certificate": round(many["material_bytes_per_certificate"]),
    "memory_beyond_material_bytes": round(extra - many["material_bytes_per_certificate"]),
    "handshakes_per_s_one_certificate": r1,
    "handshakes_per_s_many": rn,
    "rate_ratio": round(rn / r1, 3),
    "failed_handshakes": sum(r["one"]["failed"] + r["many"]["failed"] for r in runs),
}))
PY
