// Declared dependencies match what the product imports (issue 9 item 6): a package in
// "dependencies" that no product file imports is dead weight in every install, and a package the
// product imports but declares only as a devDependency (or not at all) breaks a production install.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PRODUCT_DIRS, ROOT, productFiles } from './files.ts'

interface PackageJson {
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson

/** Declared for something other than an import; each says why. */
const USED_OUTSIDE_IMPORTS: Readonly<Record<string, string>> = {
  'node-addon-api': 'C++ headers for the TPM addon (attestation/tpm/binding.gyp)'
}

/** `x`, `x/sub` → `x`; `@s/x/sub` → `@s/x`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier)
}

/** Bare specifiers in static imports/exports, `import('…')` and `import.meta.resolve('…')`. */
function importedPackages(source: string): Set<string> {
  const found = new Set<string>()
  const patterns = [
    /\bfrom\s+'([^']+)'/g,
    /^\s*import\s+'([^']+)'/gm,
    /\bimport\(\s*'([^']+)'\s*\)/g,
    /\bimport\.meta\.resolve\(\s*'([^']+)'\s*\)/g
  ]
  for (const re of patterns) {
    for (const m of source.matchAll(re)) {
      const spec = m[1]
      if (spec === undefined || spec.startsWith('.') || spec.startsWith('node:')) continue
      found.add(packageOf(spec))
    }
  }
  return found
}

t.test('the import scanner sees each import form', async t => {
  const src =
    "import a from 'a/x'\nimport type { B } from '@s/b/c'\nimport 'side'\nawait import('dyn')\n" +
    "import.meta.resolve('res')\nexport { e } from 'e'\nimport { f } from './f.ts'\nimport { g } from 'node:fs'\n"
  t.same([...importedPackages(src)].sort(), ['@s/b', 'a', 'dyn', 'e', 'res', 'side'])
})

t.test(
  'every production dependency is imported by the product, and every import is a production dependency',
  async t => {
    const imported = new Map<string, string>()
    for (const file of productFiles()) {
      for (const name of importedPackages(readFileSync(file, 'utf8'))) imported.set(name, file)
    }
    t.ok(imported.size > 10, `found the product's imports (${imported.size} packages in ${PRODUCT_DIRS.join(', ')})`)
    const declared = Object.keys(pkg.dependencies ?? {})
    const unused = declared.filter(d => !imported.has(d) && USED_OUTSIDE_IMPORTS[d] === undefined)
    t.same(unused, [], 'declared as dependencies but imported by no product file')
    const undeclared = [...imported]
      .filter(([name]) => !declared.includes(name))
      .map(([name, file]) => `${name} (${file})`)
    t.same(undeclared, [], 'imported by the product but not a production dependency')
  }
)

// containers/store.ts loads Helia's class from helia's unexported ./helia.js (helia exports only
// "."): the index also loads @helia/libp2p's public-network defaults, 60-85 MB more RSS in every
// agent (bench/agent.ts targets 200 MB). store.ts falls back to the public createHeliaLight if the
// file moves; this test makes such a helia upgrade visible instead of silently heavier.
t.test("helia's unexported Helia class is where containers/store.ts looks for it", async t => {
  const entry = import.meta.resolve('helia')
  const cls = (await import(new URL('./helia.js', entry).href)) as { Helia?: unknown }
  const ver = (await import(new URL('./version.js', entry).href)) as { name?: unknown; version?: unknown }
  t.equal(typeof cls.Helia, 'function', 'helia/dist/src/helia.js exports Helia')
  t.equal(typeof ver.name, 'string')
  t.equal(typeof ver.version, 'string')
})
