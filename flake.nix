{
  description = "quorate: attestation-gated worker node agent (TPM measured boot, BFT peer attestation, tenant containers from IPFS)";

  # No flake.lock is committed: it was written on a machine without access to GitHub, so nothing
  # here has been evaluated or built, only parsed (see docs/nixos.md). `nix flake lock` pins it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # The agent: TypeScript sources run by Node 24, runtime npm dependencies, the tpm2-tss addon.
      packages = forAllSystems (pkgs: rec {
        quorate = pkgs.callPackage ./nixos/package.nix { };
        default = quorate;
      });

      overlays.default = final: _prev: { quorate = final.callPackage ./nixos/package.nix { }; };

      # services.quorate; the package defaults to this flake's build of the agent.
      nixosModules.default =
        { pkgs, lib, ... }:
        {
          imports = [ ./nixos/module.nix ];
          services.quorate.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      # The certified node image: systemd-boot + UKI measured boot, TPM 2.0, Docker, the agent.
      #   nix build .#nixosConfigurations.certified-node.config.system.build.image
      nixosConfigurations.certified-node = lib.nixosSystem {
        modules = [
          { nixpkgs.hostPlatform = "x86_64-linux"; }
          self.nixosModules.default
          ./nixos/image.nix
        ];
      };

      # NixOS VM test with an emulated TPM: the service comes up, `quorate tpm info` and
      # `quorate tpm quote` work against /dev/tpmrm0. (x86_64 only: QEMU's tpm-tis.)
      checks.x86_64-linux.vm = nixpkgs.legacyPackages.x86_64-linux.testers.runNixOSTest (
        import ./nixos/test.nix { inherit self; }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_24
            pkgs.tpm2-tss
            pkgs.tpm2-tools
            pkgs.swtpm
            pkgs.docker
            # isolated tenants are reached through socat started with nsenter (util-linux)
            pkgs.socat
            pkgs.util-linux
            pkgs.pkg-config
            pkgs.python3
            pkgs.gcc
            pkgs.gnumake
            # test/vm: the measured-boot test boots a kernel under QEMU + OVMF + swtpm
            pkgs.qemu
            pkgs.OVMF
            pkgs.cpio
            pkgs.busybox
          ];
        };
      });
    };
}
