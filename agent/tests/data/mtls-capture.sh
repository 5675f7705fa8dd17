#!/usr/bin/env bash
# Captures mtls.pcap and mtls.tsv, the client-authentication cases the replay
# tests read. Run as root from the repository root:
#   bash agent/tests/data/mtls-capture.sh   (~40 s)
#
# Real servers and clients on 127.0.0.1 only: openssl s_server requiring
# (-Verify), requesting (-verify) or not asking for a client certificate,
# TLS 1.2 and 1.3, RSA and ECDSA server keys; clients openssl s_client, curl
# and Python's ssl, with an RSA, an ECDSA or no client certificate. One
# server port per case, so mtls.tsv maps a flow's server port to what its
# client really did:
#   port  version  server_asks  client  client_cert  expected_client_auth
# expected: mutual when the server asked and the client sent a certificate;
# server_only otherwise (a client without a certificate answers a request
# with an empty one; a client with one sends nothing when not asked).
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

cd "$tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=ca -keyout ca.key -out ca.pem 2>/dev/null
leaf() { # name keyspec
  openssl req -newkey "$2" -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile <(printf 'subjectAltName=DNS:%s\n' "$1") -out "$1.pem" 2>/dev/null
}
openssl ecparam -name prime256v1 -out p256.param
leaf server-rsa rsa:2048
leaf server-ec ec:p256.param
leaf client-rsa rsa:2048
leaf client-ec ec:p256.param

tcpdump -i lo -U -w "$tmp/mtls.pcap" 'tcp portrange 19400-19499' 2>/dev/null & pids+=($!); dump=$!
sleep 2

port=19400
tsv="$tmp/mtls.tsv"
printf '# port\tversion\tserver_asks\tclient\tclient_cert\texpected_client_auth\n' > "$tsv"

# One case: a fresh s_server accepting one connection, one client.
case_() { # version(1.2|1.3) asks(require|request|none) client(s_client|curl|python) cert(rsa|ec|none) serverkey(rsa|ec) [hrr]
  local v=$1 asks=$2 client=$3 cert=$4 skey=$5 hrr=${6:-} vflag= sflag= expect=server_only
  port=$((port + 1))
  case $asks in require) vflag="-Verify 1" ;; request) vflag="-verify 1" ;; esac
  case $v in 1.2) sflag=-tls1_2 ;; 1.3) sflag=-tls1_3 ;; esac
  # Only P-256 key shares: every client here shares X25519 first and gets
  # a HelloRetryRequest (as libpq does from PostgreSQL's default curve).
  [[ -n $hrr ]] && sflag="$sflag -groups P-256"
  if [[ $asks != none && $cert != none ]]; then expect=mutual; fi
  # shellcheck disable=SC2086
  openssl s_server -accept 127.0.0.1:$port -naccept 1 -cert server-$skey.pem -key server-$skey.key \
    -CAfile ca.pem $vflag $sflag -www -quiet </dev/null >/dev/null 2>&1 & pids+=($!)
  local srv=$!
  sleep 0.3
  local certargs=()
  [[ $cert != none ]] && certargs=(client-$cert.pem client-$cert.key)
  case $client in
    s_client)
      local a=(-connect 127.0.0.1:$port -CAfile ca.pem -quiet -no_ign_eof)
      [[ $v == 1.2 ]] && a+=(-tls1_2) || a+=(-tls1_3)
      [[ $cert != none ]] && a+=(-cert "${certargs[0]}" -key "${certargs[1]}")
      printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client "${a[@]}" >/dev/null 2>&1 || true ;;
    curl)
      local a=(-sS -k -o /dev/null --max-time 5)
      [[ $v == 1.2 ]] && a+=(--tlsv1.2 --tls-max 1.2) || a+=(--tlsv1.3)
      [[ $cert != none ]] && a+=(--cert "${certargs[0]}" --key "${certargs[1]}")
      curl "${a[@]}" "https://127.0.0.1:$port/" 2>/dev/null || true ;;
    python)
      timeout 5 python3 - "$port" "$v" "${certargs[@]}" <<'PY' || true
import socket, ssl, sys
port, v = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ver = ssl.TLSVersion.TLSv1_2 if v == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = ctx.maximum_version = ver
if len(sys.argv) > 3:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
with socket.create_connection(("127.0.0.1", port)) as s:
    try:
        with ctx.wrap_socket(s) as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            t.recv(4096)
    except (ssl.SSLError, OSError):
        pass
PY
      ;;
  esac
  sleep 0.2
  kill "$srv" 2>/dev/null || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$port" "$v${hrr:++hrr}" "$asks" "$client" "$cert" "$expect" >> "$tsv"
}

for v in 1.3 1.2; do
  for asks in require request none; do
    for client in s_client curl python; do
      for cert in rsa ec none; do
        case_ "$v" "$asks" "$client" "$cert" rsa
      done
    done
    # An ECDSA server key changes the server's flight, not the client's.
    case_ "$v" "$asks" s_client ec ec
    case_ "$v" "$asks" curl none ec
  done
done
# TLS 1.3 through a HelloRetryRequest (version column `1.3+hrr`).
for asks in require none; do
  for client in s_client curl python; do
    for cert in rsa ec none; do
      case_ 1.3 "$asks" "$client" "$cert" rsa hrr
    done
  done
done
sleep 1
kill -INT "$dump"; wait "$dump" 2>/dev/null || true
cp "$tmp/mtls.pcap" "$tmp/mtls.tsv" "$out/"
ls -l "$out"/mtls.*
