#!/bin/sh
# unwrap.sh <wrapped file> <output file>
# The AASP example's client: asks the AASP sidecar's keyprovider on localhost:$KEY_PROVIDER_PORT
# (default 50000) to unwrap a secret wrapped by `aasp -infile … -keypath … -outfile wrapped`.
# The sidecar releases the RSA key named in the annotation by secure key release and decrypts.
# As Go's AASP example: the legacy keyprovider package, attestation agent "aasp". Needs grpcurl,
# jq and base64 (busybox or coreutils).
set -eu
if [ $# -ne 2 ]; then
  echo "Usage: $0 <wrapped file> <output file>" >&2
  exit 1
fi
infile=$1
outfile=$2
if [ ! -f "$infile" ]; then
  echo "Error: the wrapped file $infile does not exist" >&2
  exit 1
fi
if [ -z "${KEY_PROVIDER_PORT:-}" ]; then
  echo "Info: KEY_PROVIDER_PORT is not set: using 50000" >&2
  KEY_PROVIDER_PORT=50000
fi
agent=$(printf aasp | base64 | tr -d '\n')
request=$(printf '{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["%s"]}},"annotation":"%s"}}' \
  "$agent" "$(tr -d '\n' < "$infile")" | base64 | tr -d '\n')
reply=$(grpcurl -plaintext -d "{\"KeyProviderKeyWrapProtocolInput\":\"$request\"}" "localhost:$KEY_PROVIDER_PORT" \
  keyprovider.KeyProviderService.UnWrapKey)
printf '%s' "$reply" | jq -r '.KeyProviderKeyWrapProtocolOutput' | base64 -d | jq -r '.keyunwrapresults.optsdata' | base64 -d > "$outfile"
echo "Unwrapped secret saved to $outfile" >&2
