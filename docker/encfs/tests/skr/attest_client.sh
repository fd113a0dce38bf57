#!/bin/sh
# /tests/skr/attest_client.sh, as in the Go skr image (its ACI example runs it as a container next
# to the sidecar): every 5 s, asks the sidecar on localhost:8080 for attestation and keeps the
# last answer, until stopped.
#   AttestClientRuntimeData (or $1)  base64 runtime data, bound into REPORT_DATA
#   AttestClientMAAEndpoint (or $2)  when set: POST /attest/maa -> /maatoken.out
#                                    else:     POST /attest/raw -> /raw.out and /attest/combined -> /combined.out
# Port overrides 8080. Unlike Go's, it exits on SIGTERM (it is PID 1 in its container).
AttestClientRuntimeData="${AttestClientRuntimeData:-${1:-}}"
AttestClientMAAEndpoint="${AttestClientMAAEndpoint:-${2:-}}"
echo "AttestClientRuntimeData = $AttestClientRuntimeData"
echo "AttestClientMAAEndpoint = $AttestClientMAAEndpoint"
api="http://localhost:${Port:-8080}"
trap 'exit 0' TERM INT
post() { curl -sS --max-time 120 -X POST -H 'Content-Type: application/json' -d "$2" -o "$3" "$api$1"; }
while true; do
  if [ -z "$AttestClientMAAEndpoint" ]; then
    post /attest/raw "{\"runtime_data\": \"$AttestClientRuntimeData\"}" /raw.out
    post /attest/combined "{\"runtime_data\": \"$AttestClientRuntimeData\"}" /combined.out
  else
    post /attest/maa "{\"maa_endpoint\": \"$AttestClientMAAEndpoint\", \"runtime_data\": \"$AttestClientRuntimeData\"}" /maatoken.out
  fi
  ls -l /*.out
  sleep 5 &
  wait $!
done
