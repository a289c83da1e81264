// Bundles the explorer's page (agent/explorer/ui/app.ts + preact + htm) into one script, so the
// explorer serves nothing fetched from elsewhere at run time. Run by setup.sh when the sources
// are newer than the bundle; `node scripts/build-ui.ts` by hand.
import { build } from 'esbuild'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const r = await build({
  entryPoints: [join(root, 'agent/explorer/ui/app.ts')],
  outfile: join(root, 'agent/explorer/dist/app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning'
})
const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
process.stderr.write(`[setup] explorer page bundled: ${bytes} bytes\n`)
