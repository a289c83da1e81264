// The chain-facing CLI as a user runs it: keys, vendor, os, chain status/query, with --json.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { quorate, startChainProcess } from './process.ts'

const EK_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ek')
const EVENTLOG = '/work/shared/fixtures/measured-boot/ovmf-q35-smp2/eventlog.bin'

t.test('keys, vendor, os and queries through the CLI', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-cli-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  t.equal((await quorate(['chain', 'init', '--home', home, '--chain-id', 'cli-test', '--insecure-bootstrap'])).code, 0)
  const { proc, url } = await startChainProcess(home)
  t.teardown(() => {
    proc.kill('SIGKILL')
  })
  const env = { QUORATE_HOME: home, QUORATE_CHAIN_RPC: url }

  const k = await quorate(['keys', 'new', '--json'], env)
  t.equal(k.code, 0, k.stderr)
  const key = JSON.parse(k.stdout) as { peerId: string; path: string }
  t.match(key.peerId, /^12D3KooW/)
  t.equal((await stat(key.path)).mode & 0o777, 0o600, 'key file 0600')
  t.equal(JSON.parse((await quorate(['keys', 'show', '--json'], env)).stdout).peerId, key.peerId)

  const reg = await quorate(['vendor', 'register', 'acme', '--json'], env)
  t.equal(reg.code, 0, reg.stderr)
  const r = JSON.parse(reg.stdout) as { hash: string; height: number }
  t.match(r.hash, /^[0-9A-F]{64}$/)
  t.ok(r.height > 0, 'prints the height')
  const dup = await quorate(['vendor', 'register', 'acme', '--json'], env)
  t.equal(dup.code, 1)
  t.match(dup.stderr, /already registered/, 'says why')

  // EK CAs from a PEM bundle (leading text, two certificates); a malformed block refuses the file before anything is sent
  const bundle = join(home, 'cas.pem')
  const [root, issuer] = ['rootca.pem', 'issuer.pem'].map(f => readFileSync(join(EK_FIXTURES, f), 'utf8'))
  await writeFile(bundle, `# EK CAs\n${root}${issuer}`)
  const ca = await quorate(['vendor', 'publish-ekca', bundle, '--vendor', 'acme', '--json'], env)
  t.equal(ca.code, 0, ca.stderr)
  t.equal(ca.stdout.trim().split('\n').length, 2, 'one transaction per certificate')
  await writeFile(bundle, `${root}-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n`)
  const badCa = await quorate(['vendor', 'publish-ekca', bundle, '--vendor', 'acme'], env)
  t.equal(badCa.code, 1)
  t.match(badCa.stderr, /block #2 \(CERTIFICATE\): body is not base64/)
  t.same(
    JSON.parse((await quorate(['chain', 'query', 'ekcas', 'acme', '--json'], env)).stdout).length,
    2,
    'nothing of the bad bundle was published'
  )

  const fw = await quorate(
    [
      'vendor',
      'publish-firmware',
      '--vendor',
      'acme',
      '--platform',
      'ovmf',
      '--version',
      '1.0',
      '--eventlog',
      EVENTLOG,
      '--golden',
      '--json'
    ],
    env
  )
  t.equal(fw.code, 0, fw.stderr)
  t.same(JSON.parse(fw.stdout).pcrs, [0, 1, 2, 3, 4, 5, 6, 7])
  const os = await quorate(
    ['os', 'publish', '--name', 'nixos', '--version', '25.05', '--pcr', `11=${'ab'.repeat(32)}`, '--json'],
    env
  )
  t.equal(os.code, 0, os.stderr)
  const osLog = await quorate(
    ['os', 'publish', '--name', 'nixos-img', '--version', '1', '--eventlog', EVENTLOG, '--json'],
    env
  )
  t.equal(osLog.code, 0, osLog.stderr)
  t.ok((JSON.parse(osLog.stdout).pcrs as number[]).includes(4), 'OS refs from the event log include PCR 4')
  const bad = await quorate(['os', 'publish', '--name', 'nixos', '--version', '25.06', '--pcr', '11=abcd'], env)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /32 bytes/)

  const refs = JSON.parse(
    (await quorate(['chain', 'query', 'refs', '--vendor', 'acme', '--platform', 'ovmf', '--json'], env)).stdout
  ) as { firmware: Array<{ name: string; pcrs: Record<string, { golden?: string[] }> }>; os: unknown[] }
  t.equal(refs.firmware[0].name, 'acme/ovmf')
  t.equal(
    refs.firmware[0].pcrs['0'].golden?.[0],
    '3e695b1035f9b7fa5ade7430fc93730efab93bcb6c0a843cdab260323f7734c4',
    'PCR 0 golden value replayed from the OVMF log'
  )
  t.equal(refs.os.length, 2, 'both OS publications')
  const rev = await quorate(
    ['vendor', 'revoke', '--vendor', 'acme', '--platform', 'ovmf', '--version', '1.0', '--json'],
    env
  )
  t.equal(rev.code, 0, rev.stderr)
  const st = JSON.parse((await quorate(['chain', 'status', '--json'], env)).stdout) as {
    chainId: string
    height: number
  }
  t.equal(st.chainId, 'cli-test')
  t.ok(st.height >= r.height)
  const proven = JSON.parse(
    (await quorate(['chain', 'query', 'key', 'vendor/acme', '--prove', '--json'], env)).stdout
  ) as { verified: boolean }
  t.equal(proven.verified, true)
})

t.test('chain init refuses fewer than 4 genesis verifiers unless --insecure-bootstrap', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-cli-gv-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  const ids = (
    JSON.parse((await quorate(['keys', 'new', '--json'], { QUORATE_HOME: home })).stdout) as { peerId: string }
  ).peerId
  const three = [
    ids,
    '12D3KooWRDnDMPnnTGH6FAGDZVtEm31iPuCeP53fMiBgY4kbZNmv',
    '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'
  ]
  const refused = await quorate(['chain', 'init', '--home', join(home, 'c3'), ...three.flatMap(v => ['--verifier', v])])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /at least 4 genesis verifiers.*got 3.*--insecure-bootstrap/s, 'says why and what to do')
  await t.rejects(stat(join(home, 'c3', 'config', 'genesis.json')), 'nothing written')
  const forced = await quorate([
    'chain',
    'init',
    '--home',
    join(home, 'c3'),
    '--insecure-bootstrap',
    ...three.flatMap(v => ['--verifier', v])
  ])
  t.equal(forced.code, 0, forced.stderr)
  t.match(forced.stderr, /WARNING: --insecure-bootstrap/)
})
