# NixOS VM test (flake check `vm`): one node with an emulated TPM (swtpm behind QEMU's
# tpm-tis), the embedded chain and the agent as services, and the CLI against the real
# /dev/tpmrm0.
#
#   nix build .#checks.x86_64-linux.vm          (or: nix flake check)
#
# The TPM that virtualisation.tpm starts is not manufactured (no EK certificate in NV), and
# `quorate tpm quote` refuses a TPM without one. The provisioning hook — run against the swtpm
# before the VM boots — plays the TPM vendor with scripts/vm/provision-ek-cert.sh: the standard
# RSA EK (template L-1, the one the agent derives), certified by a throwaway test CA, its DER
# certificate in the EK certificate NV index 0x01c00002 (TCG EK Credential Profile).
{ self }:

{ lib, pkgs, ... }:

let
  nonce = "7175307261746521c0ffee0000000000";
in
{
  name = "quorate-node";

  nodes.node =
    { config, pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      virtualisation.memorySize = 2048;
      virtualisation.diskSize = 4096;
      virtualisation.tpm.enable = true;
      # Runs on the host against the VM's swtpm before boot, TPM2TOOLS_TCTI set by qemu-vm.nix.
      # The same script is tested against swtpm by test/vm/provision-ek.test.ts.
      virtualisation.tpm.provisioning = ''
        export PATH=${
          lib.makeBinPath [
            pkgs.tpm2-tools
            pkgs.openssl
            pkgs.coreutils
            pkgs.bash
          ]
        }:$PATH
        # The CA certificate goes to the directory qemu-vm.nix shares as /tmp/xchg in the VM.
        bash ${../scripts/vm/provision-ek-cert.sh} "$TMPDIR/xchg/ek-ca.pem"
      '';

      security.tpm2.enable = true;
      environment.systemPackages = [ pkgs.jq ];

      services.quorate = {
        enable = true;
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        docker.enable = true;
        # A one-machine chain next to the agent (no committee can form with one node, so the
        # agent registers and then waits for certification; the TPM stays usable next to it).
        chain.embedded.enable = true;
      };
    };

  testScript = ''
    node.start()
    node.wait_for_unit("docker.service")
    node.wait_for_unit("quorate-chain.service")
    node.wait_until_succeeds("quorate chain status --json --rpc http://127.0.0.1:26657", timeout=60)
    node.wait_for_unit("quorate.service")

    with subtest("the TPM is the VM's TPM, reached through the resource manager"):
        info = node.succeed("QUORATE_TCTI=device:/dev/tpmrm0 quorate tpm info --json")
        print(info)
        node.succeed("QUORATE_TCTI=device:/dev/tpmrm0 quorate tpm info --json | jq -e '.ekCertificates.rsa2048 > 0'")

    with subtest("a quote with our nonce, PCRs and the firmware event log"):
        # The test VM boots its kernel directly (SeaBIOS, no UEFI): whether firmware left an
        # event log depends on the BIOS, so it is included only when the kernel exposes one.
        log = "/sys/kernel/security/tpm0/binary_bios_measurements"
        has_log = node.execute(f"test -r {log}")[0] == 0
        node.succeed(
            "QUORATE_TCTI=device:/dev/tpmrm0 quorate tpm quote --json --nonce ${nonce} --pcrs 0-9 "
            + (f"--event-log {log} " if has_log else "")
            + "--out /tmp/evidence.json"
        )
        node.succeed("jq -e '.nonce == \"${nonce}\"' /tmp/evidence.json")
        node.succeed("jq -e '.pcrs.sha256 | keys | length == 10' /tmp/evidence.json")

    with subtest("the quote verifies: identity (EK chain, AK, signature) and freshness (nonce)"):
        # No reference values here, so firmware and os fail and the command exits 1; the claims
        # that need none must hold.
        node.succeed(
            "quorate evidence verify /tmp/evidence.json --nonce ${nonce} "
            "--ek-ca /tmp/xchg/ek-ca.pem --json > /tmp/appraisal.json || true"
        )
        print(node.succeed("cat /tmp/appraisal.json"))
        node.succeed("jq -e '.status.identity.ok and .status.freshness.ok' /tmp/appraisal.json")

    with subtest("the agent runs sandboxed as its own user"):
        node.succeed("systemctl show -p User --value quorate | grep -qx quorate")
        node.succeed("test -r /etc/quorate/config.json && jq -e '.tcti == \"device:/dev/tpmrm0\"' /etc/quorate/config.json")
        print(node.succeed("systemd-analyze security quorate.service | tail -n 1"))
  '';
}
