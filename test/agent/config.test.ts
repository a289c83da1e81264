import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, parsePcrList, defaults } from '../../agent/config.ts'
import { ConfigError } from '../../encoding/errors.ts'
import { Lifecycle, IllegalTransitionError } from '../../agent/lifecycle.ts'
import { Metrics } from '../../agent/metrics.ts'

t.test('config layers: defaults → file → env → flags', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-cfg-'))
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify({ committeeSize: 4, platform: 'from-file', osImage: 'from-file' }))
  const c = loadConfig({
    file,
    env: { QUORATE_OS_IMAGE: 'from-env', QUORATE_PCRS: '0-2,13', TPM2TOOLS_TCTI: 'swtpm:port=1' },
    flags: { osImage: 'from-flag' }
  })
  t.equal(c.committeeSize, 4)
  t.equal(c.platform, 'from-file')
  t.equal(c.osImage, 'from-flag')
  t.same(c.pcrs, [0, 1, 2, 13])
  t.equal(c.tcti, 'swtpm:port=1', 'TPM2TOOLS_TCTI is used when QUORATE_TCTI is not set')
  t.ok(Object.isFrozen(c))
  t.equal(loadConfig({ env: {} }).tcti, defaults.tcti)
  t.equal(loadConfig({ env: { QUORATE_BULK_PORT: '4461' } }).bulkPort, 4461, 'bulk port from the environment')
  t.equal(loadConfig({ env: {} }).bulkPort, 0, 'ephemeral by default')
  t.equal(loadConfig({ env: {} }).containerNetwork, 'isolated', 'tenants isolated by default')
  t.equal(loadConfig({ env: {} }).netnsPool, 1, 'one network namespace made ahead of time, by default')
  t.equal(loadConfig({ env: { QUORATE_NETNS_POOL: '0' } }).netnsPool, 0, 'netnsPool from the environment')
  t.throws(() => loadConfig({ env: { QUORATE_NETNS_POOL: '9' } }), /netnsPool must be an integer 0-8 \(got 9\)/)
  t.equal(loadConfig({ env: {} }).keepImages, false, 'fetched images live in Docker only, by default')
  t.equal(loadConfig({ env: { QUORATE_KEEP_IMAGES: 'true' } }).keepImages, true, 'keepImages from the environment')
  t.equal(loadConfig({ env: { QUORATE_KEEP_IMAGES: '1' } }).keepImages, true)
  t.equal(
    loadConfig({ env: { QUORATE_KEEP_IMAGES: 'true' }, flags: { keepImages: false } }).keepImages,
    false,
    'a flag overrides the environment'
  )
  t.throws(
    () => loadConfig({ env: { QUORATE_KEEP_IMAGES: 'yes please' } }),
    /environment: keepImages must be true or false, got "yes please"/
  )
  t.equal(
    loadConfig({ env: {} }).proxyMaxInFlightPerTenant,
    16,
    'one tenant may hold a quarter of the proxy by default'
  )
  t.equal(loadConfig({ env: { QUORATE_PROXY_MAX_IN_FLIGHT_PER_TENANT: '4' } }).proxyMaxInFlightPerTenant, 4)
  t.throws(
    () => loadConfig({ env: {}, flags: { proxyMaxInFlight: 8, proxyMaxInFlightPerTenant: 9 } }),
    /proxyMaxInFlightPerTenant must be an integer from 1 to proxyMaxInFlight \(8\)/
  )
})

t.test('config: every invalid setting is reported at once', async t => {
  const err = t.throws(() =>
    loadConfig({ env: {}, flags: { committeeSize: 0, httpListen: 'nope', tcti: 'bogus', bulkPort: 70000 } })
  ) as Error
  t.type(err, ConfigError)
  t.match(err.message, /bulkPort must be a TCP port/)
  t.match(err.message, /committeeSize/)
  t.match(err.message, /httpListen/)
  t.match(err.message, /tcti/)
  t.throws(() => loadConfig({ env: {}, flags: { colour: 'blue' } as never }), /unknown setting "colour"/)
  t.throws(() => parsePcrList('0-30'), ConfigError)
  t.throws(() => parsePcrList('x'), ConfigError)
})

t.test('lifecycle refuses transitions not in the diagram', async t => {
  const l = new Lifecycle()
  const seen: string[] = []
  l.onChange(s => seen.push(s.kind))
  t.throws(() => {
    l.to({ kind: 'certified', round: 1, expiresAt: 0 })
  }, IllegalTransitionError)
  l.to({ kind: 'measuring' })
  l.to({ kind: 'registering' })
  l.to({ kind: 'awaiting-certification', round: 1 })
  l.to({ kind: 'certified', round: 1, expiresAt: 1 })
  l.to({ kind: 'revoked', reason: 'reboot' })
  t.throws(
    () => {
      l.to({ kind: 'certified', round: 2, expiresAt: 2 })
    },
    IllegalTransitionError,
    'a revoked node needs a new round'
  )
  l.to({ kind: 'stopping' })
  l.to({ kind: 'stopped' })
  t.same(seen, ['measuring', 'registering', 'awaiting-certification', 'certified', 'revoked', 'stopping', 'stopped'])
})

t.test('metrics render in Prometheus text format', async t => {
  const m = new Metrics()
  const c = m.counter('quorate_rounds_total', 'rounds')
  c.inc({ outcome: 'pass' })
  c.inc({ outcome: 'pass' })
  c.inc({ outcome: 'fail' })
  m.gauge('quorate_certified', 'certified').set(1)
  const text = m.render()
  t.match(text, /# TYPE quorate_rounds_total counter/)
  t.match(text, /quorate_rounds_total\{outcome="pass"\} 2/)
  t.match(text, /quorate_certified 1/)
  t.equal(m.value('quorate_rounds_total', { outcome: 'fail' }), 1)
})
