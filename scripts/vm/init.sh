#!/bin/busybox sh
# /init of the measured-boot test initramfs (test/vm/measured-boot.test.ts, test/helpers/qemu.ts).
# Runs as PID 1 under QEMU + OVMF + swtpm: reads the host's nonce from QEMU fw_cfg
# (opt/quorate/nonce), creates an EK and a restricted ECDSA P-256 AK, quotes sha256 PCRs 0-9 with
# the nonce and prints every piece base64-encoded between markers on the serial console, then
# powers off once the host has acknowledged the end marker. The nonce is NOT taken from the
# kernel command line: the EFI stub measures the command line into PCR 9, which would make PCR 9
# different on every boot.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin TPM2TOOLS_TCTI=device:/dev/tpmrm0 LD_LIBRARY_PATH=/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security
mount -t tmpfs tmpfs /tmp

say () { echo "QUORATE: $*"; }
emit () { # emit NAME FILE: the file's bytes, base64, between markers the host looks for
  echo "=====BEGIN $1====="
  base64 "$2"
  echo "=====END $1====="
}
# End marker, then wait for the host's acknowledgement on the console before powering off:
# powering off at once could cut off console output still queued in the tty layer. The power-off
# itself must be the kernel's (it sends TPM2_Shutdown): cutting the VM's power instead leaves the
# TPM shut down disorderly, which counts towards its dictionary-attack lockout.
finish () { echo "$1"; read -r -t 120 ack || :; poweroff -f; }
fail () { say "FAIL $*"; finish "=====QUORATE-FAIL====="; }

say "init $(cat /etc/quorate-image)"
[ -e /sys/firmware/qemu_fw_cfg ] || insmod /lib/modules/qemu_fw_cfg.ko || fail "insmod qemu_fw_cfg"
nf=/sys/firmware/qemu_fw_cfg/by_name/opt/quorate/nonce/raw
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e $nf ] && break; sleep 0.2; done
[ -e $nf ] || fail "no fw_cfg nonce"
nonce=$(cat $nf)
say "nonce $nonce"
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ -e /dev/tpmrm0 ] && break; sleep 0.2; done
[ -e /dev/tpmrm0 ] || fail "no /dev/tpmrm0"

cd /tmp
# Dictionary-attack failure counter: stays 0 as long as every earlier boot shut the TPM down
# orderly (a power cut without TPM2_Shutdown increments it; at MAX_AUTH_FAIL the TPM locks out).
say "lockout-counter $(tpm2 getcap properties-variable | sed -n 's/^TPM2_PT_LOCKOUT_COUNTER: *//p')"
# The standard RSA-2048 EK (template of TCG EK Credential Profile, low range) and an AK under it:
# ECDSA P-256 / SHA-256, restricted signing (tpm2_createak's template).
tpm2 createek -c ek.ctx -G rsa -u ek.pub >/dev/null || fail createek
tpm2 createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name -f tss >/dev/null || fail createak
tpm2 quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7,8,9 -q "$nonce" -g sha256 -m quote.msg -s quote.sig >/dev/null || fail quote
tpm2 nvread 0x01c00002 -o ekcert.der 2>/dev/null || : > ekcert.der
: > pcrs.txt
for i in 0 1 2 3 4 5 6 7 8 9; do echo "sha256 $i $(cat /sys/class/tpm/tpm0/pcr-sha256/$i)" >> pcrs.txt; done
cat /sys/kernel/security/tpm0/binary_bios_measurements > eventlog.bin || fail eventlog

emit quote.msg quote.msg
emit quote.sig quote.sig
emit ak.pub ak.pub
emit ek.pub ek.pub
emit ekcert.der ekcert.der
emit pcrs.txt pcrs.txt
emit eventlog.bin eventlog.bin
finish "=====QUORATE-DONE====="
