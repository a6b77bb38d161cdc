#!/usr/bin/env bash
# Full TLS 1.3 handshakes per second, ECDSA P-256 and RSA-2048: certbind against nginx
# (Debian's package) serving the same certificate with as many workers as certbind has
# threads, driven by the same load generator (no session resumption). Alternates the two
# servers RUNS times and reports each run, the medians and certbind / nginx.
#
#   bench/handshakes.sh [RUNS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
SECONDS_PER_RUN="${2:-5}"
THREADS="$(nproc)"

command -v nginx >/dev/null || { sudo -n true 2>/dev/null && SUDO=sudo || SUDO=; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx-light >/dev/null; }
cargo build --release --bin certbind --example handshake_bench >/dev/null

work="$(mktemp -d)"
cleanup() {
    [ -n "${certbind_pid:-}" ] && kill "$certbind_pid" 2>/dev/null || true
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The same certificates for both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench.example.com \
    -addext subjectAltName=DNS:bench.example.com -keyout "$work/ec.key" -out "$work/ec.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench.example.com \
    -addext subjectAltName=DNS:bench.example.com -keyout "$work/rsa.key" -out "$work/rsa.crt" 2>/dev/null

# certbind, with one HTTPS listener per certificate.
api_port="$(free_port)"; cb_ec="$(free_port)"; cb_rsa="$(free_port)"
export CERTBIND_ACCESS_KEY_ID=CBBENCHHANDSHAKES01 CERTBIND_ACCESS_KEY_SECRET=bench-handshakes-secret-0123456789abcdef
export CERTBIND_API="http://127.0.0.1:$api_port"
RUST_LOG=error target/release/certbind serve --data-dir "$work/data" --api-addr "127.0.0.1:$api_port" --listen-ip 127.0.0.1 >/dev/null 2>&1 &
certbind_pid=$!
for _ in $(seq 100); do curl -sf "$CERTBIND_API/healthz" >/dev/null && break; sleep 0.1; done
cb() { target/release/certbind --json "$@"; }
id_of() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("certificate", d)["id"])'; }
ec_id="$(cb cert upload --cert "$work/ec.crt" --key "$work/ec.key" | id_of)"
rsa_id="$(cb cert upload --cert "$work/rsa.crt" --key "$work/rsa.key" | id_of)"
lb="$(cb lb create --type application | id_of)"
cb listener create --lb "$lb" --protocol HTTPS --port "$cb_ec" --cert "$ec_id" --wait >/dev/null
cb listener create --lb "$lb" --protocol HTTPS --port "$cb_rsa" --cert "$rsa_id" --wait >/dev/null

# nginx, same certificates, TLS 1.3 only, no session reuse, as many workers as threads.
ng_ec="$(free_port)"; ng_rsa="$(free_port)"
cat >"$work/nginx.conf" <<CONF
worker_processes $THREADS;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server { listen 127.0.0.1:$ng_ec ssl; ssl_certificate $work/ec.crt; ssl_certificate_key $work/ec.key; return 200; }
    server { listen 127.0.0.1:$ng_rsa ssl; ssl_certificate $work/rsa.crt; ssl_certificate_key $work/rsa.key; return 200; }
}
CONF
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log"
sleep 0.5

measure() {
    target/release/examples/handshake_bench --addr "127.0.0.1:$1" --sni bench.example.com \
        --threads "$THREADS" --seconds "$SECONDS_PER_RUN"
}
out="$work/runs.jsonl"
for run in $(seq "$RUNS"); do
    for pair in "ecdsa-p256 $cb_ec $ng_ec" "rsa-2048 $cb_rsa $ng_rsa"; do
        set -- $pair
        echo "{\"run\":$run,\"key\":\"$1\",\"server\":\"certbind\",\"result\":$(measure "$2")}" | tee -a "$out"
        echo "{\"run\":$run,\"key\":\"$1\",\"server\":\"nginx\",\"result\":$(measure "$3")}" | tee -a "$out"
    done
done
python3 - "$out" "$THREADS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
summary = {"threads": int(sys.argv[2]), "runs": max(r["run"] for r in runs)}
for key in ("ecdsa-p256", "rsa-2048"):
    rate = {s: statistics.median(r["result"]["per_second"] for r in runs if r["key"] == key and r["server"] == s)
            for s in ("certbind", "nginx")}
    failed = sum(r["result"]["failed"] for r in runs if r["key"] == key)
    summary[key] = {"certbind_median_per_s": rate["certbind"], "nginx_median_per_s": rate["nginx"],
                    "certbind_over_nginx": round(rate["certbind"] / rate["nginx"], 3), "failed_handshakes": failed}
print(json.dumps(summary))
PY
