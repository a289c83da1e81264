// One class per name across the product (issue 9 item 5): NotCertifiedError and MeasurementError
// were each defined twice (agent/ and containers/), so `instanceof` against one missed the other;
// containers/events.ts exported the TCG event log's function names for the container log.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { ROOT, productFiles } from './files.ts'

/** Names that two files may both use for a class, each with why. */
const SHARED_CLASS_NAMES: Readonly<Record<string, string>> = {
  Reader: 'encoding/canonical.ts keeps its CBOR reader private; attestation/reader.ts is the TPM structure reader',
  Writer: 'encoding/canonical.ts keeps its CBOR writer private; attestation/reader.ts is the TPM structure writer'
}

function classesByName(): Map<string, string[]> {
  const where = new Map<string, string[]>()
  for (const file of productFiles()) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:export\s+)?(?:abstract\s+)?class\s+([A-Za-z0-9_$]+)/gm)) {
      const name = m[1] ?? ''
      where.set(name, [...(where.get(name) ?? []), relative(ROOT, file)])
    }
  }
  return where
}

t.test('no class name is defined in two product files', async t => {
  const where = classesByName()
  t.ok(where.has('QuorateError') && where.has('NotCertifiedError'), 'the scan sees the product classes')
  const twice = [...where].filter(([name, files]) => files.length > 1 && SHARED_CLASS_NAMES[name] === undefined)
  t.same(
    twice.map(([name, files]) => `${name}: ${files.join(', ')}`),
    [],
    'classes defined more than once'
  )
})

t.test('the container log does not take the TCG event log function names', async t => {
  const events = await import('../../containers/events.ts')
  const containers = await import('../../containers/index.ts')
  for (const name of ['parseEventLog', 'replayEventLog']) {
    t.notOk(name in events, `containers/events.ts has no ${name}`)
    t.notOk(name in containers, `containers/index.ts has no ${name}`)
  }
})
