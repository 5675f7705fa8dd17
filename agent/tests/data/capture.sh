#!/usr/bin/env bash
# Captures the small loopback pcaps the replay tests read. Run as root from
# the repository root: bash agent/tests/data/capture.sh   (~10 s)
#
# Real servers and clients on 127.0.0.1 / ::1 only: python3 -m http.server,
# openssl s_server -www; curl. Three real writers record the same traffic:
#   loopback.pcap        tcpdump -i lo          (pcap, Ethernet, microseconds)
#   any-sll2.pcap        tcpdump -i any         (pcap, Linux cooked SLL2, nanoseconds)
#   loopback.pcapng      dumpcap -i lo          (pcapng)
# Snaplen 256: enough for the classifier's 128-byte prefix, keeps files small,
# and exercises payloads cut short by the snaplen.
# Every process started is stopped by its PID, on failure too.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

HTTP=18080 HTTP6=18081 TLS=18443
filter="tcp port $HTTP or tcp port $HTTP6 or tcp port $TLS"
mkdir "$tmp/www" && echo hello > "$tmp/www/hello.txt"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

python3 -m http.server $HTTP --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 & pids+=($!)
python3 -m http.server $HTTP6 --bind ::1 --directory "$tmp/www" >/dev/null 2>&1 & pids+=($!)
openssl s_server -accept 127.0.0.1:$TLS -cert "$tmp/cert.pem" -key "$tmp/key.pem" -www -quiet \
  </dev/null >/dev/null 2>&1 & pids+=($!)

tcpdump -i lo -s 256 -U -w "$tmp/loopback.pcap" "$filter" 2>/dev/null & pids+=($!); d1=$!
tcpdump -i any -s 256 -U --time-stamp-precision=nano -w "$tmp/any-sll2.pcap" "tcp port $HTTP" 2>/dev/null & pids+=($!); d2=$!
dumpcap -q -i lo -s 256 -w "$tmp/loopback.pcapng" -f "$filter" 2>/dev/null & pids+=($!); d3=$!
sleep 2

curl -sS -o /dev/null "http://127.0.0.1:$HTTP/hello.txt"
curl -sS -o /dev/null "http://[::1]:$HTTP6/hello.txt"
curl -sS -k --tlsv1.3 -o /dev/null "https://127.0.0.1:$TLS/"
curl -sS -k --tls-max 1.2 -o /dev/null "https://127.0.0.1:$TLS/"
sleep 1

for p in $d1 $d2 $d3; do kill -INT "$p"; done
for p in $d1 $d2 $d3; do wait "$p" 2>/dev/null || true; done
cp "$tmp/loopback.pcap" "$tmp/any-sll2.pcap" "$tmp/loopback.pcapng" "$out/"
ls -l "$out"/*.pcap*
