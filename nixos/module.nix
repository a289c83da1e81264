# services.quorate — the quorate node agent as a hardened systemd service.
#
#   services.quorate = {
#     enable = true;
#     chainRpc = "http://chain.example:26657";
#     openFirewall = true;
#     settings.committeeSize = 7;
#   };
#
# The agent reads one JSON config file (agent/config.ts: typed defaults → this file →
# QUORATE_* environment → flags); `settings` is rendered into /etc/quorate/config.json. The
# agent rejects keys it does not know, so freeform keys must be ones agent/config.ts lists.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.quorate;
  json = pkgs.formats.json { };
  inherit (lib)
    mkEnableOption
    mkOption
    mkIf
    mkDefault
    types
    literalExpression
    optional
    optionals
    filterAttrs
    ;

  # The TPM character device behind a device: TCTI (null for swtpm:/mssim: TCTIs in tests).
  tpmDevice = if lib.hasPrefix "device:" cfg.tcti then lib.removePrefix "device:" cfg.tcti else null;

  # null means "the agent's own default" (agent/config.ts), so those keys are left out.
  configFile = json.generate "quorate-config.json" (filterAttrs (_: v: v != null) cfg.settings);

  # The firmware event log is root-only (securityfs, mode 0440). A root pre-start step (the "+"
  # prefix runs it outside the sandbox and as root) copies it where the unprivileged agent can
  # read it. The firmware log does not grow after ExitBootServices, so one copy per start is
  # the whole log.
  eventLogCopy = "/run/quorate/binary_bios_measurements";
  copyEventLog = pkgs.writeShellScript "quorate-copy-eventlog" ''
    src=/sys/kernel/security/tpm0/binary_bios_measurements
    if [ -r "$src" ]; then
      ${pkgs.coreutils}/bin/install -m 0440 -o ${cfg.user} -g ${cfg.group} "$src" ${eventLogCopy}
    else
      echo "quorate: no firmware event log at $src (no TPM, or not booted with measured boot)" >&2
    fi
  '';

  # The sandbox both services share; each adds its own user, devices and address families.
  # 'isolated' tenants (the agent's default) are reached through a relay that the agent starts
  # inside each tenant's network namespace (nsenter --net … socat, containers/relay.ts): that
  # takes setns (CAP_SYS_ADMIN) on a root-owned process's namespace (CAP_SYS_PTRACE). The docker
  # group the agent already has is root-equivalent; 'host' networking needs neither capability
  # but lets tenants reach everything on the node's loopback.
  isolated = cfg.settings.containerNetwork == "isolated";
  relayPrivileges =
    if isolated then
      {
        AmbientCapabilities = [
          "CAP_SYS_ADMIN"
          "CAP_SYS_PTRACE"
        ];
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN"
          "CAP_SYS_PTRACE"
        ];
        RestrictNamespaces = "net";
        # the container's init must be visible to open /proc/<pid>/ns/net
        ProtectProc = "default";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
          "setns"
        ];
      }
    else
      { };

  hardening = {
    StateDirectoryMode = "0700";
    UMask = "0077";
    # Filesystem: everything read-only but the state directory.
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    # No privileges at all.
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    RestrictSUIDSGID = true;
    # Kernel and system surfaces neither service touches.
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    # Refuse, do not kill: libuv probes optional syscalls (io_uring) and falls back on EPERM.
    SystemCallErrorNumber = "EPERM";
    # V8 compiles JavaScript to machine code at run time: it needs writable+executable
    # memory, so MemoryDenyWriteExecute must stay off for any Node.js service.
    MemoryDenyWriteExecute = false;
  };
in
{
  options.services.quorate = {
    enable = mkEnableOption "the quorate attestation-gated worker node agent";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The quorate package (provides bin/quorate).";
    };

    tcti = mkOption {
      type = types.str;
      default = "device:/dev/tpmrm0";
      example = "swtpm:host=127.0.0.1,port=2321";
      description = ''
        tpm2-tss TCTI string of the TPM. The kernel resource manager (/dev/tpmrm0) lets the
        agent and operators' `quorate tpm …` commands share the TPM; /dev/tpm0 would not.
      '';
    };

    chainRpc = mkOption {
      type = types.str;
      default = "http://127.0.0.1:26657";
      description = "Chain RPC endpoint (CometBFT JSON-RPC: the embedded validator or a CometBFT node).";
    };

    chain.embedded = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also run a one-machine embedded chain validator on this host (`quorate chain start`,
          RPC on 127.0.0.1:26657, state in /var/lib/quorate-chain), initialised on first start.
          For a single node, a demo or a test; a network of nodes shares one chain (CometBFT,
          or one embedded validator the others reach through chainRpc).
        '';
      };
      chainId = mkOption {
        type = types.str;
        default = "quorate-local";
        description = "Chain id written into the genesis on first start.";
      };
      verifiers = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Genesis verifier node ids (libp2p peer ids), certified forever; written on first start only. At least 4 (3f + 1, f ≥ 1) unless insecureBootstrap.";
      };
      insecureBootstrap = mkOption {
        type = types.bool;
        default = false;
        description = "Start the chain with fewer than 4 genesis verifiers (`chain init --insecure-bootstrap`): its first committees then tolerate no liar. For a single test node.";
      };
    };

    docker.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run Docker and let the agent use it for tenant containers. This puts the agent's user in
        the `docker` group, which is ROOT-EQUIVALENT: whoever controls the agent can start a
        privileged container. The agent is the component that gates what runs (chain-published
        digests, its own valid certification), so it is trusted with this; nothing else should
        run as its user.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the libp2p port (ports.p2p) so committee peers can reach this node, the bulk port
        (ports.bulk) so peers fetching images from it get them on a direct connection, and the
        HTTPS port (ports.https) where clients reach its tenants and apps over TLS 1.3 with the
        key its certification binds (docs/tls.md). Plain HTTP (ports.http) stays on loopback.
      '';
    };

    ports = {
      p2p = mkOption {
        type = types.port;
        default = 4460;
        description = "TCP port of the libp2p host (attestation protocols between nodes).";
      };
      bulk = mkOption {
        type = types.port;
        default = 4461;
        description = "TCP port of the bulk channel: images sent to peers on a direct TCP connection after they asked over libp2p (settings.bulkPort).";
      };
      http = mkOption {
        type = types.port;
        default = 8460;
        description = "TCP port of the local HTTP API (status, Prometheus metrics, tenant proxy), loopback only.";
      };
      https = mkOption {
        type = types.port;
        default = 9460;
        description = "TCP port of the HTTPS endpoint clients use (tenant and app routes, TLS 1.3 with the attested key; settings.httpsListen).";
      };
    };

    user = mkOption {
      type = types.str;
      default = "quorate";
      description = "User the agent runs as (created when left at the default).";
    };
    group = mkOption {
      type = types.str;
      default = "quorate";
      description = "Primary group of the agent's user.";
    };

    settings = mkOption {
      description = ''
        The agent's configuration, written to /etc/quorate/config.json. Keys are those of
        agent/config.ts (AgentConfig); a null value leaves the agent's default.
      '';
      default = { };
      example = literalExpression ''
        {
          committeeSize = 7;
          platform = "dell-r650-bios-1.9";
          osImage = "quorate-node";
          deploy = [ { image = "registry.example/inference:v3"; port = 8080; } ];
        }
      '';
      type = types.submodule {
        freeformType = json.type;
        options = {
          home = mkOption {
            type = types.str;
            default = "/var/lib/quorate";
            description = "State directory: node key, IPFS blocks, container event log, agent state. Must stay /var/lib/quorate (StateDirectory) under the sandbox.";
          };
          tcti = mkOption {
            type = types.str;
            default = cfg.tcti;
            defaultText = literalExpression "config.services.quorate.tcti";
            description = "TPM TCTI string (see services.quorate.tcti).";
          };
          chainRpc = mkOption {
            type = types.str;
            default = cfg.chainRpc;
            defaultText = literalExpression "config.services.quorate.chainRpc";
            description = "Chain RPC endpoint (see services.quorate.chainRpc).";
          };
          listen = mkOption {
            type = types.listOf types.str;
            default = [ "/ip4/0.0.0.0/tcp/${toString cfg.ports.p2p}" ];
            defaultText = literalExpression ''[ "/ip4/0.0.0.0/tcp/''${toString config.services.quorate.ports.p2p}" ]'';
            description = "libp2p listen multiaddrs.";
          };
          bulkPort = mkOption {
            type = types.port;
            default = cfg.ports.bulk;
            defaultText = literalExpression "config.services.quorate.ports.bulk";
            description = "TCP port of the bulk channel, on the hosts libp2p listens on (see services.quorate.ports.bulk).";
          };
          httpListen = mkOption {
            type = types.str;
            default = "127.0.0.1:${toString cfg.ports.http}";
            defaultText = literalExpression ''"127.0.0.1:''${toString config.services.quorate.ports.http}"'';
            description = "host:port of the local HTTP API; plain HTTP, so the agent accepts only a loopback address.";
          };
          httpsListen = mkOption {
            type = types.str;
            default = "0.0.0.0:${toString cfg.ports.https}";
            defaultText = literalExpression ''"0.0.0.0:''${toString config.services.quorate.ports.https}"'';
            description = "host:port of the HTTPS endpoint for clients (registered on chain; set settings.httpsEndpoint to the URL clients should use when it is not this host's address).";
          };
          committeeSize = mkOption {
            type = types.nullOr (types.ints.between 1 100);
            default = null;
            description = "Committee size k (tolerates f = ⌊(k−1)/3⌋ lying verifiers); null = the agent's default (7).";
          };
          certificationTtlMs = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "How long a certification lasts, in ms; null = the agent's default.";
          };
          reattestBeforeExpiryMs = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "Re-attest when this much of the certification remains (the re-attestation interval is the TTL minus this), in ms; null = the agent's default.";
          };
          containerNetwork = mkOption {
            type = types.str;
            default = "isolated";
            description = "Tenant networking: isolated (loopback only, reached through a relay; grants the unit CAP_SYS_ADMIN and CAP_SYS_PTRACE for it), host (tenants share the node's loopback), none, or a Docker network name.";
          };
          keepImages = mkOption {
            type = types.bool;
            default = false;
            description = "Also keep fetched tenant images in the IPFS store, so that this node serves them to peers (Docker's image store holds them either way; this doubles their disk use).";
          };
          appsPolicy = mkOption {
            type = types.str;
            default = "all";
            description = "Serverless apps this node serves at /app/<name>/: all, none, only those in appsList (allow), or all but those (deny).";
          };
          appsList = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = "App names for appsPolicy allow or deny.";
          };
          memoryBudgetBytes = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "Sum of the memory limits of running and paused apps; an app whose limit alone exceeds it is refused (403). null = the agent's default (1 GiB).";
          };
          diskBudgetBytes = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "Sum of the image sizes of apps this node holds; least recently used images beyond it are removed. null = the agent's default (4 GiB).";
          };
          appScaleDown = mkOption {
            type = types.str;
            default = "auto";
            description = "What an app idle for its idle timeout becomes: auto (paused, then stopped or removed under budget pressure), pause, stop or remove.";
          };
          usagePeriodMs = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "Period of the node's signed usage.record on chain, in ms; null = the agent's default (10 min).";
          };
          eventLogPath = mkOption {
            type = types.str;
            default = eventLogCopy;
            description = "Firmware event log the agent reads: the copy made by the root pre-start step (the original is root-only).";
          };
        };
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.settings.home == "/var/lib/quorate";
        message = "services.quorate.settings.home must be /var/lib/quorate: it is the service's StateDirectory and the only writable path in its sandbox.";
      }
      {
        assertion = !cfg.chain.embedded.enable || cfg.chain.embedded.insecureBootstrap || builtins.length cfg.chain.embedded.verifiers >= 4;
        message = "services.quorate.chain.embedded needs at least 4 verifiers (3f + 1, f >= 1), or insecureBootstrap = true for a single test node.";
      }
    ];

    # /dev/tpmrm0 is root:tss 0660 through tpm2-tss's udev rules, which security.tpm2 installs.
    security.tpm2.enable = mkDefault true;
    security.tpm2.applyUdevRules = mkDefault true;

    virtualisation.docker.enable = mkIf cfg.docker.enable true;

    users.users = mkIf (cfg.user == "quorate") {
      quorate = {
        isSystemUser = true;
        group = cfg.group;
        # tss: the TPM device. docker: the Docker socket (root-equivalent, see docker.enable).
        extraGroups = [ "tss" ] ++ optional cfg.docker.enable "docker";
        home = "/var/lib/quorate";
        description = "quorate node agent";
      };
    };
    users.groups = mkIf (cfg.group == "quorate") { quorate = { }; };

    environment.etc."quorate/config.json".source = configFile;
    # Operators inspect the TPM and the node with the same CLI (quorate tpm info, quorate verify …).
    environment.systemPackages = [ cfg.package ];

    networking.firewall.allowedTCPPorts = optionals cfg.openFirewall [
      cfg.ports.p2p
      cfg.ports.bulk
      cfg.ports.https
    ];

    systemd.services.quorate-chain = mkIf cfg.chain.embedded.enable {
      description = "quorate embedded chain validator";
      wantedBy = [ "multi-user.target" ];
      before = [ "quorate.service" ];
      serviceConfig = hardening // {
        # First start only: genesis and validator key (the init command refuses to overwrite).
        ExecStartPre = pkgs.writeShellScript "quorate-chain-init" ''
          if [ ! -e /var/lib/quorate-chain/config/genesis.json ]; then
            exec ${lib.getExe cfg.package} chain init --home /var/lib/quorate-chain \
              --chain-id ${lib.escapeShellArg cfg.chain.embedded.chainId} ${if cfg.chain.embedded.insecureBootstrap then "--insecure-bootstrap" else ""} \
              ${lib.concatMapStringsSep " " (v: "--verifier ${lib.escapeShellArg v}") cfg.chain.embedded.verifiers}
          fi
        '';
        ExecStart = "${lib.getExe cfg.package} chain start --home /var/lib/quorate-chain --rpc 127.0.0.1:26657";
        Restart = "on-failure";
        RestartSec = "5s";
        # The validator needs no device, no Docker, no TPM: the tightest sandbox here.
        DynamicUser = true;
        StateDirectory = "quorate-chain";
        PrivateDevices = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
      };
    };

    systemd.services.quorate = {
      description = "quorate node agent (attestation-gated worker)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ optional cfg.chain.embedded.enable "quorate-chain.service";
      after = [ "network-online.target" ] ++ optional cfg.docker.enable "docker.service" ++ optional cfg.chain.embedded.enable "quorate-chain.service";
      requires = optional cfg.docker.enable "docker.service";
      restartTriggers = [ configFile ];

      serviceConfig = hardening // {
        ExecStartPre = [ "+${copyEventLog}" ];
        ExecStart = "${lib.getExe cfg.package} node start --config /etc/quorate/config.json";
        Restart = "on-failure";
        RestartSec = "5s";
        # Graceful shutdown stops tenant containers (onShutdown) and leaves the libp2p host.
        TimeoutStopSec = "60s";

        # A dedicated static user rather than DynamicUser: it needs stable supplementary groups
        # (tss, docker) and a state directory whose owner never changes across restarts (the
        # node's identity key lives there).
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = "quorate";
        RuntimeDirectory = "quorate";
        RuntimeDirectoryMode = "0750";

        # Devices: only the TPM resource manager. PrivateDevices=true would build a /dev without
        # /dev/tpmrm0, so the device cgroup does the restricting instead.
        PrivateDevices = false;
        DevicePolicy = "closed";
        DeviceAllow = optional (tpmDevice != null) "${tpmDevice} rw";

        # TPM and Docker are reached through group-owned files; capabilities only for the
        # isolated tenants' relay (relayPrivileges).
        AmbientCapabilities = "";
        RemoveIPC = true;
        PrivateMounts = true;
        KeyringMode = "private";

        # IPv4/IPv6 for libp2p, the chain RPC and the HTTP API; UNIX for the Docker socket;
        # NETLINK because libuv enumerates interfaces (os.networkInterfaces) through it.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];

        # libp2p keeps a socket per peer connection and stream multiplexer.
        LimitNOFILE = 65536;
      } // relayPrivileges;
      path = optionals isolated [
        pkgs.socat
        pkgs.util-linux
      ];
    };
  };
}
