#!/bin/bash
# setup-key-mhsm.sh <key-name> <mhsm-name>
# Creates the AASP example's wrapping key: an RSA 3072 key generated inside the Managed HSM
# (exportable, with a release policy), and next to it the files `aasp -infile` wraps with:
#   <key-name>-pub.pem              the public key (SPKI PEM)
#   <key-name>-info.json            {"public_key_path","kms_endpoint","attester_endpoint"}
#   <key-name>-release-policy.json  the release policy the key was created with
# Env: MAA_ENDPOINT (required, e.g. sharedeus2.eus2.attest.azure.net), MANAGED_IDENTITY (required:
# the principal id that may release the key), HOST_DATA (optional: the pod's policy digest,
# `encfs policy-digest`; without it any SEV-SNP pod attested by that MAA can have the key).
# Needs the Azure CLI, logged in (az login) to the HSM's subscription.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "Usage: $0 <key-name> <mhsm-name>" >&2
  exit 1
fi
key=$1
hsm=$2
: "${MAA_ENDPOINT:?set MAA_ENDPOINT to the MAA host the release policy trusts (e.g. sharedeus2.eus2.attest.azure.net)}"
: "${MANAGED_IDENTITY:?set MANAGED_IDENTITY to the principal id of the identity that releases the key (az identity show --query principalId)}"

code=$(curl --silent --output /dev/null --write-out '%{http_code}' "https://$hsm.managedhsm.azure.net")
if [ "$code" != 401 ]; then
  echo "The Managed HSM $hsm.managedhsm.azure.net answered $code, not 401: create it first (az keyvault create --hsm-name $hsm ...)" >&2
  exit 1
fi

claims='{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}'
if [ -n "${HOST_DATA:-}" ]; then
  claims="$claims,{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"$HOST_DATA\"}"
else
  echo "Warning: HOST_DATA is not set: the key is releasable to any SEV-SNP pod that $MAA_ENDPOINT attests" >&2
fi
printf '{"anyOf":[{"authority":"https://%s","allOf":[%s]}],"version":"0.2"}\n' "$MAA_ENDPOINT" "$claims" > "$key-release-policy.json"

az keyvault key create --id "https://$hsm.managedhsm.azure.net/keys/$key" --kty RSA-HSM --size 3072 \
  --ops wrapKey unwrapKey encrypt decrypt --exportable --policy "$key-release-policy.json" > /dev/null
rm -f "$key-pub.pem"
az keyvault key download --hsm-name "$hsm" -n "$key" -f "$key-pub.pem"
az keyvault role assignment create --hsm-name "$hsm" --assignee "$MANAGED_IDENTITY" \
  --role "Managed HSM Crypto Service Release User" --scope "/keys/$key" > /dev/null
printf '{\n  "public_key_path": "%s",\n  "kms_endpoint": "%s.managedhsm.azure.net",\n  "attester_endpoint": "%s"\n}\n' \
  "$key-pub.pem" "$hsm" "$MAA_ENDPOINT" > "$key-info.json"
echo "Created $key in $hsm with $key-release-policy.json; wrap with: aasp -infile plaintext -keypath ./$key -outfile wrapped" >&2
