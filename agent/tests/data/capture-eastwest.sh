#!/usr/bin/env bash
# Records eastwest.pcap, which replay_cli.rs reads: the AJP, STOMP, RDP and
# ZooKeeper sessions of agent-common/tests/fixtures/capture.py (real
# clients and servers: httpd mod_proxy_ajp -> Tomcat 10, stomp.py -> a
# silent listener, xfreerdp -> xrdp, kazoo -> zookeeper), in a network
# namespace of its own so that only their traffic is on its loopback.
# Run as root from the repository root: bash agent/tests/data/capture-eastwest.sh
# (~30 s; needs the packages listed in agent-common/tests/fixtures/README.md).
# Each flow appears twice (client -> recording proxy -> server); the
# fixtures written by this run go to a temporary directory and are dropped.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$out/../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unshare -n bash -euo pipefail -c '
  ip link set lo up
  tcpdump -i lo -s 256 -U -w "$1/eastwest.pcap" tcp 2>/dev/null & dump=$!
  sleep 1
  /usr/bin/python3 "$2/agent-common/tests/fixtures/capture.py" --out "$1/fixtures" --only xfreerdp,ajp,kazoo,stomp
  sleep 1
  kill "$dump"; wait "$dump" || true
' _ "$tmp" "$root"
cp "$tmp/eastwest.pcap" "$out/eastwest.pcap"
