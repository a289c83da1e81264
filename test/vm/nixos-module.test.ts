// services.quorate (nixos/module.nix) evaluated without nixpkgs by nixos/tests/eval-module-stub.nix:
// the config file the module renders must load through agent/config.ts (which rejects unknown
// keys), and the unit must keep its sandbox. This is the contract between the module's
// `settings` and AgentConfig; the real NixOS evaluation needs nixpkgs (see docs/nixos.md).
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { loadConfig } from '../../agent/config.ts'

const run = promisify(execFile)
const STUB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'nixos', 'tests', 'eval-module-stub.nix')

let nix = true
try {
  execFileSync('nix-instantiate', ['--version'], { stdio: 'ignore' })
} catch {
  nix = false
}

// Shapes of the parts of the evaluated NixOS config this test reads.
interface Evaluated {
  assertions: Array<{ assertion: boolean; message: string }>
  environment: { etc: Record<string, { source: { value: Record<string, unknown> } }> }
  networking: { firewall: { allowedTCPPorts: number[] } }
  users: { users: Record<string, { extraGroups: string[] }> }
  systemd: { services: Record<string, { serviceConfig?: Record<string, unknown>; after?: string[] }> }
}

async function evaluate(user: string): Promise<Evaluated> {
  const { stdout } = await run('nix-instantiate', ['--eval', '--strict', '--json', STUB, '--arg', 'user', user], {
    timeout: 60_000
  })
  return JSON.parse(stdout) as Evaluated
}

function loads(settings: Record<string, unknown>): ReturnType<typeof loadConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-nixcfg-'))
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(settings))
    return loadConfig({ file: join(dir, 'config.json'), env: {} })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

t.test(
  'services.quorate renders a config the agent accepts and a sandboxed unit',
  { skip: nix ? false : 'nix-instantiate not installed (Debian nix-bin)' },
  async t => {
    const d = await evaluate('{ enable = true; }')
    t.ok(
      d.assertions.every(a => a.assertion),
      'module assertions hold for the defaults'
    )
    const settings = d.environment.etc['quorate/config.json'].source.value
    const cfg = loads(settings)
    t.equal(cfg.tcti, 'device:/dev/tpmrm0', 'TPM through the kernel resource manager')
    t.equal(cfg.home, '/var/lib/quorate', 'home is the StateDirectory')
    t.same(cfg.listen, ['/ip4/0.0.0.0/tcp/4460'], 'libp2p on the p2p port')
    t.equal(cfg.httpListen, '127.0.0.1:8460', 'HTTP API on loopback')
    t.equal(cfg.httpsListen, '0.0.0.0:9460', 'the HTTPS endpoint for clients on every address')
    t.equal(cfg.bulkPort, 4461, 'the bulk channel on a fixed port a firewall can open')
    t.equal(
      cfg.eventLogPath,
      '/run/quorate/binary_bios_measurements',
      'the event log copy the root pre-start step makes'
    )

    const sc = d.systemd.services.quorate.serviceConfig ?? {}
    t.match(sc.ExecStart, /\/bin\/quorate node start --config \/etc\/quorate\/config\.json$/)
    t.same(
      [sc.User, sc.ProtectSystem, sc.ProtectHome, sc.PrivateTmp, sc.NoNewPrivileges],
      ['quorate', 'strict', true, true, true],
      'user, read-only system, no home, private tmp, no new privileges'
    )
    t.equal(cfg.containerNetwork, 'isolated', 'tenants isolated by default')
    t.equal(cfg.keepImages, false, 'fetched images kept by Docker only')
    t.same(
      [sc.CapabilityBoundingSet, sc.AmbientCapabilities, sc.RestrictNamespaces],
      [['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE'], ['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE'], 'net'],
      'isolated tenants: exactly what the relay needs to enter their network namespace'
    )
    t.equal((d.systemd.services.quorate as { path?: unknown[] }).path?.length, 2, 'socat and nsenter on the unit path')
    t.same([sc.DevicePolicy, sc.DeviceAllow], ['closed', ['/dev/tpmrm0 rw']], 'only the TPM device')
    t.same(sc.RestrictAddressFamilies, ['AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK'])
    t.same(sc.SystemCallFilter, ['@system-service', '~@privileged', '~@resources', 'setns'])
    t.equal(sc.Restart, 'on-failure')
    t.same(
      d.users.users.quorate.extraGroups,
      ['tss', 'docker'],
      'tss for the TPM, docker (root-equivalent) for tenants'
    )
    t.same(d.networking.firewall.allowedTCPPorts, [], 'no port opened unless asked')
    t.same(d.systemd.services['quorate-chain'], {}, 'no embedded chain unless asked')
  }
)

t.test(
  'services.quorate options: settings, firewall, embedded chain, a non-device TCTI',
  { skip: nix ? false : 'nix-instantiate not installed' },
  async t => {
    const d = await evaluate(
      '{ enable = true; tcti = "swtpm:host=127.0.0.1,port=2321"; openFirewall = true; docker.enable = false; chain.embedded.enable = true; chain.embedded.insecureBootstrap = true; settings = { committeeSize = 4; reattestBeforeExpiryMs = 60000; deploy = [ { image = "demo/echo"; port = 8080; } ]; }; }'
    )
    const cfg = loads(d.environment.etc['quorate/config.json'].source.value)
    t.equal(cfg.committeeSize, 4)
    t.equal(cfg.reattestBeforeExpiryMs, 60000)
    t.same(
      cfg.deploy.map(d => ({ ...d })),
      [{ image: 'demo/echo', port: 8080 }],
      'freeform settings pass through, nested values too'
    )
    t.equal(cfg.tcti, 'swtpm:host=127.0.0.1,port=2321')
    t.same(d.systemd.services.quorate.serviceConfig?.DeviceAllow, [], 'no device for a socket TCTI')
    t.same(d.users.users.quorate.extraGroups, ['tss'], 'no docker group without docker')
    t.same(d.networking.firewall.allowedTCPPorts, [4460, 4461, 9460], 'p2p, bulk, https (plain HTTP stays on loopback)')
    const chain = d.systemd.services['quorate-chain'].serviceConfig ?? {}
    t.match(chain.ExecStart, /quorate chain start --home \/var\/lib\/quorate-chain --rpc 127\.0\.0\.1:26657$/)
    t.equal(chain.DynamicUser, true, 'the validator runs as a dynamic user')
    t.ok(d.systemd.services.quorate.after?.includes('quorate-chain.service'), 'agent starts after the chain')

    const bad = await evaluate('{ enable = true; settings.home = "/srv/quorate"; }')
    t.notOk(
      bad.assertions.every(a => a.assertion),
      'moving home out of the StateDirectory trips the assertion'
    )
    const few = await evaluate(
      '{ enable = true; chain.embedded = { enable = true; verifiers = [ "12D3KooWRDnDMPnnTGH6FAGDZVtEm31iPuCeP53fMiBgY4kbZNmv" ]; }; }'
    ).catch((err: { stdout?: string }) => JSON.parse(err.stdout ?? '{}') as typeof d)
    t.notOk(
      few.assertions.every(a => a.assertion),
      'an embedded chain with fewer than 4 genesis verifiers trips the assertion (issue 10)'
    )
    t.throws(
      () => loads({ ...bad.environment.etc['quorate/config.json'].source.value, comitteeSize: 3 }),
      /unknown setting "comitteeSize"/,
      'a misspelt freeform key fails at agent start, naming it'
    )
  }
)

t.test(
  'services.quorate with host networking for tenants: no capabilities at all',
  { skip: nix ? false : 'nix-instantiate not installed' },
  async t => {
    const d = await evaluate('{ enable = true; settings.containerNetwork = "host"; }')
    const cfg = loads(d.environment.etc['quorate/config.json'].source.value)
    t.equal(cfg.containerNetwork, 'host')
    const sc = d.systemd.services.quorate.serviceConfig ?? {}
    t.same(
      [sc.CapabilityBoundingSet, sc.AmbientCapabilities, sc.RestrictNamespaces],
      ['', '', true],
      'no privileges, no namespaces'
    )
    t.same(sc.SystemCallFilter, ['@system-service', '~@privileged', '~@resources'])
    t.same((d.systemd.services.quorate as { path?: unknown[] }).path, [], 'no relay tools')
  }
)
