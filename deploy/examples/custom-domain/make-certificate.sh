#!/usr/bin/env bash
# Makes a throwaway CA and a certificate for api.example.test, and writes beside this script:
#   ca.crt            the CA, for curl --cacert
#   certificate.yaml  the Secret storefront-tls (kubernetes.io/tls) the example's domain names,
#                     which standalone mode reads with the other files
# Both are git-ignored: a private key is never committed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=Tollgate example CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=api.example.test" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:api.example.test\nextendedKeyUsage=serverAuth\n' >ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile ext.cnf -out tls.crt 2>/dev/null
indent() { sed 's/^/    /' "$1"; }
{
    echo "# Made by make-certificate.sh: a throwaway certificate for the example. Not committed."
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata: {name: storefront-tls, namespace: default}"
    echo "type: kubernetes.io/tls"
    echo "stringData:"
    echo "  tls.crt: |"
    indent tls.crt
    echo "  tls.key: |"
    indent tls.key
} >"$here/certificate.yaml"
cp ca.crt "$here/ca.crt"
echo "wrote $here/certificate.yaml and $here/ca.crt" >&2
