# The quorate agent as a Nix package.
#
# There is no build step for the TypeScript: Node 24 runs the sources directly (type stripping),
# so the package is the source tree, its runtime npm dependencies and the one native part, the
# Node-API addon over tpm2-tss in attestation/tpm (built by node-gyp against this Node's headers,
# finding tpm2-tss through pkg-config as binding.gyp asks).
{
  lib,
  buildNpmPackage,
  nodejs_24,
  node-gyp,
  pkg-config,
  python3,
  tpm2-tss,
  makeWrapper,
}:

let
  fs = lib.fileset;
  # Only what quorate runs (the agent, the CLI, the demo with its software TPM maker and the sample
  # measured boot in attestation/samples): no tests, benches, docs or local build output. The
  # product never imports test/; test/cli/package.test.ts runs the CLI from a copy of exactly
  # these folders (it parses this list and the cp line below, which must name the same ones).
  src = fs.toSource {
    root = ../.;
    fileset = fs.difference (fs.unions [
      ../package.json
      ../package-lock.json
      ../agent
      ../attestation
      ../chain
      ../containers
      ../cli
      ../encoding
    ]) (fs.maybeMissing ../attestation/tpm/build);
  };
in
buildNpmPackage {
  pname = "quorate";
  version = (lib.importJSON ../package.json).version;
  inherit src;

  nodejs = nodejs_24;

  # Fixed-output hash of the npm dependencies in package-lock.json. NOT computed here (no
  # network to the npm registry from the machine this was written on): after any lock file
  # change run `nix run nixpkgs#prefetch-npm-deps -- package-lock.json` and paste the result,
  # or build once and copy the hash Nix reports.
  npmDepsHash = lib.fakeHash;

  # Runtime dependencies only. The devDependencies include the npm package `node`, whose install
  # script downloads a Node binary (no network in the sandbox; Nix provides nodejs_24), plus tap,
  # TypeScript and node-gyp, none of which the agent needs at run time.
  npmInstallFlags = [ "--omit=dev" ];

  nativeBuildInputs = [
    pkg-config
    python3
    node-gyp
    makeWrapper
  ];
  buildInputs = [ tpm2-tss ];

  # Replaces `npm run build` (there is none): build the TPM addon only.
  buildPhase = ''
    runHook preBuild
    (cd attestation/tpm && node-gyp rebuild --nodedir=${nodejs_24})
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    mkdir -p $out/lib/quorate $out/bin
    cp -r package.json node_modules agent attestation chain containers cli encoding $out/lib/quorate/
    # Keep the addon itself, not node-gyp's intermediate objects and Makefiles.
    find $out/lib/quorate/attestation/tpm/build -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find $out/lib/quorate/attestation/tpm/build/Release -mindepth 1 ! -name '*.node' -exec rm -rf {} +
    test -f $out/lib/quorate/attestation/tpm/build/Release/quorate_tpm.node

    # bin/quorate of the repository finds Node in node_modules/.bin (a devDependency); here the
    # wrapper pins nodejs_24 instead. LD_LIBRARY_PATH: tpm2-tss's TCTI loader dlopen()s
    # libtss2-tcti-device.so.0 (and the other TCTIs) by name at run time, which the addon's
    # RUNPATH does not cover.
    makeWrapper ${nodejs_24}/bin/node $out/bin/quorate \
      --add-flags "--no-warnings=ExperimentalWarning $out/lib/quorate/cli/main.ts" \
      --prefix LD_LIBRARY_PATH : ${lib.makeLibraryPath [ tpm2-tss ]}
    runHook postInstall
  '';

  meta = {
    description = "Attestation-gated worker node agent: TPM measured boot, peer attestation under a BFT quorum, tenant containers from IPFS";
    license = lib.licenses.asl20;
    mainProgram = "quorate";
    platforms = lib.platforms.linux;
  };
}
