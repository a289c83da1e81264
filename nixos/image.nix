# The certified node image: a NixOS appliance that boots with measured boot and runs the agent.
#
# Boot chain and what lands in which PCR (TCG PC Client PFP; systemd's "TPM2 PCR Measurements"):
#   UEFI firmware          PCRs 0-7   (vendor reference values, published on chain per platform)
#   systemd-boot           PCR 4      (firmware measures the UKI it starts), PCR 5 (GPT)
#   systemd-stub (UKI)     PCR 11     (every UKI section: kernel, initrd, cmdline, os-release,
#                                     uname …) and PCR 12 (cmdline overrides, credentials; none)
#   Linux EFI stub         PCR 9      (initrd and load options, as in test/vm)
#   systemd in the initrd  PCR 11     (systemd-pcrphase: enter-initrd, leave-initrd, sysinit, ready)
#   quorate                PCR 13     (container launches; systemd-stub would extend PCR 13 only
#                                     for system extensions (sysext) passed next to the UKI, and
#                                     this image ships none)
# The OS reference values (PCRs 4, 9, 11) follow from the UKI alone: `systemd-measure calculate`
# predicts PCR 11 from the UKI's sections, PCR 4 is the Authenticode hashes of the EFI binaries
# started (systemd-boot, the UKI and, depending on the systemd version, the kernel inside it),
# and PCR 9 is sha256 of the initrd and of the UCS-2 command line the stub hands the kernel
# (test/helpers/qemu.ts predictPcr9 does this for OVMF's direct kernel boot). Publish them with `quorate` (os.publish) for each image version.
#
# Build (on a machine with Nix and network):  nix build .#nixosConfigurations.certified-node.config.system.build.image
# Boot it under QEMU with OVMF and swtpm (like test/vm) or write image.raw to a disk.
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:

let
  efiArch = pkgs.stdenv.hostPlatform.efiArch;
  rootLabel = "quorate-root";
in
{
  imports = [
    ./module.nix
    (modulesPath + "/image/repart.nix")
  ];

  system.stateVersion = "25.05";
  system.image.id = "quorate-node";
  system.image.version = "1";
  networking.hostName = lib.mkDefault "quorate-node";

  # --- Boot: systemd-boot → UKI (systemd-stub) → systemd initrd -------------------------------
  # The appliance is not rebuilt in place (no nixos-rebuild, no generations): its ESP is written
  # once by systemd-repart below, with systemd-boot as the removable-media loader and the UKI as
  # a Type #2 entry it discovers in /EFI/Linux. GRUB and the NixOS systemd-boot installer (which
  # writes Type #1 entries with a separate kernel and initrd, i.e. no UKI) are therefore off.
  boot.loader.grub.enable = false;
  boot.loader.systemd-boot.enable = false;
  boot.initrd.systemd.enable = true;
  boot.initrd.systemd.tpm2.enable = true;
  boot.initrd.availableKernelModules = [ "tpm_tis" "tpm_crb" ];
  boot.kernelParams = [
    "console=ttyS0,115200"
    "console=tty0"
    # The firmware log stays readable under /sys/kernel/security/tpm0; IMA is not used (the
    # agent measures containers into PCR 13 itself).
  ];
  # The command line lives inside the UKI (boot.uki.settings.UKI.Cmdline, from kernelParams) and
  # so inside PCR 11. A command line handed over by the boot loader instead is ignored by
  # systemd-stub under Secure Boot and otherwise measured into PCR 12 — either way nobody
  # appends "init=/bin/sh" unseen; loader.conf below also disables the editor.

  image.repart = {
    name = "quorate-node";
    partitions = {
      esp = {
        contents = {
          "/EFI/BOOT/BOOT${lib.toUpper efiArch}.EFI".source = "${pkgs.systemd}/lib/systemd/boot/efi/systemd-boot${efiArch}.efi";
          "/EFI/Linux/${config.system.boot.loader.ukiFile}".source = "${config.system.build.uki}/${config.system.boot.loader.ukiFile}";
          # No menu, no editor: the command line cannot be changed at boot.
          "/loader/loader.conf".source = pkgs.writeText "loader.conf" ''
            timeout 0
            editor no
            console-mode keep
          '';
        };
        repartConfig = {
          Type = "esp";
          Label = "esp";
          Format = "vfat";
          SizeMinBytes = "256M";
        };
      };
      root = {
        storePaths = [ config.system.build.toplevel ];
        repartConfig = {
          Type = "root";
          Format = "ext4";
          Label = rootLabel;
          Minimize = "guess";
        };
      };
    };
  };

  fileSystems."/" = {
    device = "/dev/disk/by-partlabel/${rootLabel}";
    fsType = "ext4";
    # The image is minimal; on first boot the root partition (the last one) and its file system
    # grow to the disk, making room for /var/lib/quorate (IPFS blocks, container images).
    autoResize = true;
  };
  boot.growPartition = true;
  fileSystems."/boot" = {
    device = "/dev/disk/by-partlabel/esp";
    fsType = "vfat";
    options = [ "ro" "umask=0077" ];
  };

  # --- TPM -------------------------------------------------------------------------------------
  security.tpm2 = {
    enable = true;
    applyUdevRules = true;
    # TPM2TOOLS_TCTI etc. = device:/dev/tpmrm0 for operators' tpm2-tools.
    tctiEnvironment.enable = true;
  };
  environment.systemPackages = [ pkgs.tpm2-tools ];

  # --- The agent and Docker ----------------------------------------------------------------------
  services.quorate = {
    enable = true;
    docker.enable = true;
    openFirewall = true;
    settings = {
      osImage = "quorate-node";
      platform = lib.mkDefault "default";
    };
  };
  virtualisation.docker.daemon.settings = {
    # Tenant containers are reached through the agent's proxy, never directly.
    ip = "127.0.0.1";
    live-restore = false;
  };

  # --- A closed appliance ----------------------------------------------------------------------
  users.mutableUsers = false;
  # No interactive logins by default; operators add their SSH keys in their own module. NixOS
  # refuses an immutable user set nobody can log in to unless told that this is intended.
  users.users.root.hashedPassword = lib.mkDefault "!";
  users.allowNoPasswordLogin = lib.mkDefault true;
  services.openssh = {
    enable = lib.mkDefault false;
    settings.PasswordAuthentication = false;
  };
  nix.enable = lib.mkDefault false;
  documentation.enable = false;
  networking.useNetworkd = true;
  networking.firewall.enable = true;
}
