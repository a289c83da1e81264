#!/usr/bin/env bash
# Plays the TPM vendor for an unmanufactured TPM (NixOS test VMs' swtpm, a bare `swtpm socket`):
# creates the standard RSA-2048 EK (TCG EK Credential Profile template L-1, the one tpm2_createek
# and quorate's ekPublic('rsa2048') derive), certifies it with a throwaway CA and writes the DER
# certificate to the RSA EK certificate NV index 0x01c00002, so `quorate tpm quote` finds it.
#
#   TPM2TOOLS_TCTI=... scripts/vm/provision-ek-cert.sh [CA_PEM_OUT]
#
# Needs tpm2-tools and openssl (3.x: `x509 -new -force_pubkey`). Used by nixos/test.nix
# (virtualisation.tpm.provisioning) and tested against swtpm by test/vm/provision-ek.test.ts.
# The CA is for tests only: its key is discarded; CA_PEM_OUT receives its certificate.
set -euo pipefail
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
tpm2_createek -G rsa -c "$d/ek.ctx" -u "$d/ek.pem" -f pem >/dev/null
tpm2_flushcontext -t # no resource manager behind a bare swtpm: leave no transient object
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$d/ca.key" -out "$d/ca.pem" -subj /CN=quorate-test-ek-ca -days 2 2>/dev/null
openssl x509 -new -force_pubkey "$d/ek.pem" -subj /CN=quorate-test-tpm \
  -CA "$d/ca.pem" -CAkey "$d/ca.key" -days 2 -outform der -out "$d/ek.der" 2>/dev/null
tpm2_nvdefine 0x01c00002 -C o -s "$(stat -c %s "$d/ek.der")" \
  -a "ownerwrite|ownerread|authread|authwrite|no_da" >/dev/null
tpm2_nvwrite 0x01c00002 -C o -i "$d/ek.der"
if [ $# -ge 1 ]; then cp "$d/ca.pem" "$1"; fi
echo "provision-ek-cert: EK certificate ($(stat -c %s "$d/ek.der") bytes) written to NV 0x01c00002" >&2
