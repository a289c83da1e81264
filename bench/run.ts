// `npm run bench`: runs every bench/<area>.ts that exports `run()` and prints one JSON object
// { machine, results: { <area>: figures | { error } } } on stdout. Targets are reported next to
// the figures by each bench; nothing here asserts timings (this machine is shared and noisy).
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join, dirname, basename } from 'node:path'
import os from 'node:os'

const dir = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const results: Record<string, unknown> = {}
for (const f of readdirSync(dir)
  .filter(f => f.endsWith('.ts') && f !== 'run.ts')
  .sort()) {
  const area = basename(f, '.ts')
  if (only.length > 0 && !only.includes(area)) continue
  process.stderr.write(`[bench] ${area} …\n`)
  const t0 = performance.now()
  try {
    const mod = (await import(join(dir, f))) as { run?: () => Promise<Record<string, unknown>> }
    if (typeof mod.run !== 'function') continue
    results[area] = { ...(await mod.run()), wallSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)) }
  } catch (err) {
    results[area] = { error: err instanceof Error ? err.message : String(err) }
  }
}
const out = {
  date: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version
  },
  results
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
