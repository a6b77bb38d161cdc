#!/usr/bin/env bash
# Time from submitting a certificate change until the new certificate is served, certbind
# (a replace job over the native API) against HAProxy's runtime API (`set ssl cert` +
# `commit ssl cert` over the admin stats socket) making the same change on the same
# certificates (ECDSA P-256), both measured by real handshakes on 127.0.0.1. Both servers
# run side by side; the runs alternate which goes first.
#
# Case "ports": PORTS (default 1,000) HTTPS listeners on as many ports, all serving OLD.
#   certbind: one load balancer, every listener with OLD as its default certificate;
#   POST /v1/replace OLD -> NEW. HAProxy: one frontend per port, each
#   `bind 127.0.0.1:PORT ssl crt old.pem` on the one shared file; `set ssl cert old.pem`
#   with NEW, then `commit ssl cert old.pem`. Done when a handshake on every port
#   presents NEW.
# Case "sni": 100,000 SNI bindings. certbind binds a certificate at most once per
#   listener, so "OLD on 100,000 SNI bindings" would mean 100,000 listeners; the faithful
#   equivalent used here is the SNI benchmark's setup: one listener serving SNI_CERTS
#   (default 100,000) certificates host<i>.bench.example.com, each its own key (host0 is
#   the default), and the certificate of host<SNI_CERTS/2> is replaced by a new one for the
#   same name. certbind: one HTTPS listener with 1 default + 99,999 additional certificates,
#   POST /v1/replace OLD -> NEW. HAProxy: one frontend, `bind ... ssl crt-list list.txt`
#   with one certificate file per line, `set ssl cert` + `commit ssl cert` on the rotated
#   file. Done when a handshake for that name presents NEW. This measures what a one-
#   certificate change costs next to 100,000 others (a snapshot rebuild for certbind, one
#   SSL_CTX for HAProxy).
#
# Per run and server: all_serve_new_seconds (submission until the last target was first
# seen presenting NEW: an upper bound, its resolution is one sweep of handshakes over the
# targets, one_sweep_seconds), last_old_seen_seconds (start of the latest handshake that
# still saw OLD: a lower bound), acknowledged_seconds (certbind: the job reported
# succeeded, polled every 20 ms; HAProxy: `commit ssl cert` answered), accepted_seconds
# (certbind: POST answered; HAProxy: `set ssl cert` answered), and the handshakes made
# during the change (a background loop over every port, or over the rotated name and 99
# others, plus the checking handshakes) with how many failed. Each run rotates to a fresh
# certificate (C0 -> C1 -> C2 ...). The summary gives medians and certbind / HAProxy.
#
#   bench/replace-vs-haproxy.sh [PORTS] [SNI_CERTS] [RUNS]
#
# PORTS or SNI_CERTS of 0 skips that case. Generating and loading 100,000 certificates
# takes a few minutes (HAProxy reads one file per certificate).
set -euo pipefail
cd "$(dirname "$0")/.."
PORTS="${1:-1000}"
SNI_CERTS="${2:-100000}"
RUNS="${3:-3}"

HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
if [ ! -x "$HAPROXY" ]; then
    sudo -n true 2>/dev/null && SUDO=sudo || SUDO=
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q haproxy >/dev/null
    HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
fi
# haproxy.service would hold :80 and a stats socket of its own; this benchmark starts its own.
cargo build --release --bin certbind --example replace_haproxy_bench >/dev/null

work="$(mktemp -d)"
cleanup() {
    for f in "$work"/*/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    # KEEP_LOGS=DIR keeps the servers' logs there.
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS"
        for f in "$work"/*/*.log; do [ -f "$f" ] && cp "$f" "$KEEP_LOGS/$(basename "$(dirname "$f")")-$(basename "$f")"; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

out="$work/runs.jsonl"
run_case() { # run_case CASE COUNT
    [ "$2" -gt 0 ] || return 0
    mkdir -p "$work/$1"
    target/release/examples/replace_haproxy_bench --case "$1" --count "$2" --runs "$RUNS" \
        --work "$work/$1" --server target/release/certbind --haproxy "$HAPROXY" | tee -a "$out"
    for f in "$work/$1"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
}
run_case ports "$PORTS"
run_case sni "$SNI_CERTS"

python3 - "$out" "$("$HAPROXY" -v | head -1)" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summary = {"haproxy": sys.argv[2], "runs": max((r["run"] for r in runs), default=0)}
for case in ("ports", "sni"):
    rs = [r for r in runs if r["case"] == case]
    if not rs:
        continue
    def med(server, key):
        values = [r[key] for r in rs if r["server"] == server and r[key] is not None]
        return round(statistics.median(values), 4) if values else None
    entry = {"targets": rs[0]["targets"], "count": rs[0]["count"]}
    for server in ("certbind", "haproxy"):
        entry[server] = {
            "median_all_serve_new_seconds": med(server, "all_serve_new_seconds"),
            "median_last_old_seen_seconds": med(server, "last_old_seen_seconds"),
            "median_acknowledged_seconds": med(server, "acknowledged_seconds"),
            "median_accepted_seconds": med(server, "accepted_seconds"),
            "median_one_sweep_seconds": med(server, "one_sweep_seconds"),
            "handshakes_during_changes": sum(r["handshakes"] for r in rs if r["server"] == server),
            "failed_handshakes": sum(r["failed_handshakes"] for r in rs if r["server"] == server),
            "timed_out_runs": sum(r["timed_out"] for r in rs if r["server"] == server),
            "all_succeeded": all(r["state"] == "succeeded" for r in rs if r["server"] == server),
        }
    def ratio(key):
        c, h = entry["certbind"][key], entry["haproxy"][key]
        return round(c / h, 3) if c is not None and h else None
    entry["certbind_over_haproxy_all_serve_new"] = ratio("median_all_serve_new_seconds")
    entry["certbind_over_haproxy_acknowledged"] = ratio("median_acknowledged_seconds")
    summary[case] = entry
print(json.dumps(summary))
PY
