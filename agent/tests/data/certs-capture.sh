#!/usr/bin/env bash
# Captures certs.pcap and certs.tsv, the server-certificate cases the replay
# tests read. Run as root from the repository root:
#   bash agent/tests/data/certs-capture.sh   (~15 s)
#
# Real openssl s_server instances on 127.0.0.1, one port per certificate,
# each asked by openssl s_client (and curl for the clean one) for the name
# good.test (SNI). certs.tsv: port, TLS version, client, the certificate,
# the expected cert_issues (comma-separated; "-" for none; "null" when the
# certificate cannot be seen, TLS 1.3).
# SECLEVEL=0 lets OpenSSL use the RSA-1024 and SHA-1 certificates at all.
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

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
mkdir newcerts && touch index.txt && echo 1000 > serial
cat > ca.cnf <<'EOF'
[ca]
default_ca = d
[d]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
EOF
# name keyspec san md start end
signed() {
  openssl req -newkey "$2" -nodes -subj "/CN=$3" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\n' "$3" > "$1.ext"
  openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in "$1.csr" -out "$1.pem" \
    -md "$4" -startdate "$5" -enddate "$6" -extfile "$1.ext" 2>/dev/null
}
signed clean rsa:2048 good.test sha256 20250101000000Z 20350101000000Z
signed wildcard rsa:2048 '*.good.test' sha256 20250101000000Z 20350101000000Z
signed expired rsa:2048 good.test sha256 20200101000000Z 20210101000000Z
signed future rsa:2048 good.test sha256 20900101000000Z 20910101000000Z
signed othername rsa:2048 other.test sha256 20250101000000Z 20350101000000Z
signed rsa1024 rsa:1024 good.test sha256 20250101000000Z 20350101000000Z
signed sha1 rsa:2048 good.test sha1 20250101000000Z 20350101000000Z
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=good.test \
  -addext subjectAltName=DNS:good.test -keyout selfsigned.key -out selfsigned.pem 2>/dev/null

tcpdump -i lo -U -w "$tmp/certs.pcap" 'tcp portrange 19500-19599' 2>/dev/null & pids+=($!); dump=$!
sleep 2
port=19500
printf '# port\tversion\tclient\tcertificate\texpected_cert_issues\n' > certs.tsv

case_() { # cert version client sni expected
  port=$((port + 1))
  local v=-tls1_2
  [[ $2 == 1.3 ]] && v=-tls1_3
  openssl s_server -accept 127.0.0.1:$port -naccept 1 -cert "$1.pem" -key "$1.key" \
    -cipher DEFAULT@SECLEVEL=0 $v -www -quiet </dev/null >/dev/null 2>&1 & pids+=($!)
  local srv=$!
  sleep 0.3
  case $3 in
    s_client)
      printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client -connect 127.0.0.1:$port \
        -servername "$4" -cipher DEFAULT@SECLEVEL=0 $v -quiet -no_ign_eof >/dev/null 2>&1 || true ;;
    curl)
      local a=(--tlsv1.2 --tls-max 1.2)
      [[ $2 == 1.3 ]] && a=(--tlsv1.3)
      curl -sS -k -o /dev/null --max-time 5 "${a[@]}" --resolve "$4:$port:127.0.0.1" \
        "https://$4:$port/" 2>/dev/null || true ;;
  esac
  sleep 0.2
  kill "$srv" 2>/dev/null || true
  printf '%s\t%s\t%s\t%s\t%s\n' "$port" "$2" "$3" "$1" "$5" >> certs.tsv
}

case_ clean 1.2 s_client good.test -
case_ clean 1.2 curl good.test -
case_ wildcard 1.2 s_client api.good.test -
case_ expired 1.2 s_client good.test expired
case_ future 1.2 s_client good.test not_yet_valid
case_ selfsigned 1.2 s_client good.test self_signed
case_ othername 1.2 s_client good.test name_mismatch
case_ rsa1024 1.2 s_client good.test weak_key
case_ sha1 1.2 s_client good.test weak_signature
case_ expired 1.3 s_client good.test null
case_ clean 1.3 curl good.test null
sleep 1
kill -INT "$dump"; wait "$dump" 2>/dev/null || true
cp certs.pcap certs.tsv "$out/"
ls -l "$out"/certs.*
