#!/bin/sh
# unwrap.sh <annotation file (base64, as encfs wrap writes it)> <output file>
# Asks the keyprovider on $KEY_PROVIDER (default 127.0.0.1:50000) to unwrap it: the sidecar
# releases the RSA key by secure key release and decrypts. Needs grpcurl, jq and base64.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 <annotation file> <output file>" >&2; exit 2; }
agent=$(printf skr | base64 | tr -d '\n')
request=$(printf '{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["%s"]}},"annotation":"%s"}}' \
  "$agent" "$(tr -d '\n' < "$1")" | base64 | tr -d '\n')
grpcurl -plaintext -d "{\"key_provider_key_wrap_protocol_input\":\"$request\"}" "${KEY_PROVIDER:-127.0.0.1:50000}" \
  key_provider.KeyProviderService.UnWrapKey \
  | jq -r '.[]' | base64 -d | jq -r '.keyunwrapresults.optsdata' | base64 -d > "$2"
