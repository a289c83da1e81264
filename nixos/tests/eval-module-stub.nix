# Smoke evaluation of nixos/module.nix WITHOUT nixpkgs (this repository's CI machine cannot
# fetch it): a stub `lib` (mkOption/mkIf/types … reduced to what the module uses, option
# defaults taken literally, user values merged over them) and stub `pkgs`. It catches typos,
# missing attributes and bad interpolations, and yields the rendered config file and unit so
# test/vm/nixos-module.test.ts can check them against agent/config.ts. It proves nothing about
# nixpkgs' real option types and merging — only a real `nix build` does.
#
#   nix-instantiate --eval --strict --json nixos/tests/eval-module-stub.nix --arg user '{ enable = true; }'
{ user ? { } }:
let
  b = builtins;
  isOpt = v: b.isAttrs v && v ? _isOption;
  recursiveUpdate = a: c: a // b.mapAttrs (n: v: if b.isAttrs v && b.isAttrs (a.${n} or null) && !(v ? _isPkg) then recursiveUpdate a.${n} v else v) c;
  types = rec {
    str = { name = "str"; }; bool = { name = "bool"; }; port = { name = "port"; }; package = { name = "package"; };
    listOf = t: { name = "listOf"; }; nullOr = t: { name = "nullOr"; };
    ints = { between = a: c: { name = "int"; }; positive = { name = "int"; }; unsigned = { name = "int"; }; };
    submodule = m: { name = "submodule"; _submodule = m; };
    attrsOf = t: { name = "attrsOf"; };
  };
  lib = {
    inherit types recursiveUpdate;
    mkOption = a: { _isOption = true; } // a;
    mkEnableOption = d: { _isOption = true; default = false; type = types.bool; };
    mkIf = c: x: if c then x else { };
    mkDefault = x: x;
    mkForce = x: x;
    literalExpression = x: x;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: x: if c then x else [ ];
    filterAttrs = f: s: b.listToAttrs (b.filter (p: f p.name p.value) (map (n: { name = n; value = s.${n}; }) (b.attrNames s)));
    hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
    removePrefix = p: s: if b.substring 0 (b.stringLength p) s == p then b.substring (b.stringLength p) (-1) s else s;
    getExe = p: "${p}/bin/${p.meta.mainProgram}";
    escapeShellArg = s: "'${s}'";
    concatMapStringsSep = sep: f: l: b.concatStringsSep sep (map f l);
    makeBinPath = l: b.concatStringsSep ":" (map (p: "${p}/bin") l);
  };
  fakePkg = name: { _isPkg = true; outPath = "/nix/store/fake-${name}"; meta.mainProgram = name; };
  pkgs = {
    formats.json = { }: { type = { name = "json"; }; generate = name: v: { _isPkg = true; outPath = "/nix/store/fake-${name}"; value = v; }; };
    writeShellScript = name: text: { _isPkg = true; outPath = "/nix/store/fake-${name}"; inherit text; };
    writeText = name: text: { _isPkg = true; outPath = "/nix/store/fake-${name}"; inherit text; };
    coreutils = fakePkg "coreutils";
    socat = fakePkg "socat";
    util-linux = fakePkg "util-linux";
    callPackage = f: a: fakePkg "quorate";
  };
  defaultsOf = opts: b.mapAttrs (n: v:
    if isOpt v then
      (if (v.type or { }) ? _submodule then recursiveUpdate (defaultsOf v.type._submodule.options) (v.default or { }) else v.default or null)
    else defaultsOf v) opts;
  config = { services.quorate = recursiveUpdate (defaultsOf module.options.services.quorate) user; };
  module = import ../module.nix { inherit config lib pkgs; };
  c = module.config;
  strip = v: if b.isAttrs v then (if v ? _isPkg then { store = v.outPath; } // (if v ? value then { value = strip v.value; } else { }) // (if v ? text then { inherit (v) text; } else { }) else b.mapAttrs (n: x: strip x) v) else if b.isList v then map strip v else v;
in strip c
