// The packaged quorate runs: the folders nixos/package.nix copies (parsed from it, so this stays
// true when the list changes) plus node_modules are enough for `quorate --help` and real commands,
// and no product file reaches outside them — the product never imports its tests (STYLE.md §16).
import t from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const NIX = readFileSync(join(ROOT, 'nixos', 'package.nix'), 'utf8')

/** The top-level paths of `fs.unions [ ../a ../b … ]` in the source fileset. */
function filesetPaths(): string[] {
  const m = /fs\.unions\s*\[([^\]]*)\]/.exec(NIX)
  if (m === null) throw new Error('package.nix: no fs.unions [ … ] list')
  return [...m[1].matchAll(/\.\.\/([\w.-]+)/g)].map(x => x[1])
}

/** What installPhase copies into $out/lib/quorate. */
function copiedPaths(): string[] {
  const m = /cp -r ([^\n$]+)\$out\/lib\/quorate\//.exec(NIX)
  if (m === null) throw new Error('package.nix: no `cp -r … $out/lib/quorate/` line')
  return m[1].trim().split(/\s+/)
}

const copied = copiedPaths()
const folders = copied.filter(p => p !== 'node_modules' && p !== 'package.json')

t.test('package.nix: the source fileset and the install copy name the same folders', async t => {
  t.same(
    filesetPaths()
      .filter(p => !p.startsWith('package'))
      .sort(),
    [...folders].sort()
  )
  t.ok(copied.includes('package.json') && copied.includes('node_modules'))
  for (const f of folders) t.ok(statSync(join(ROOT, f)).isDirectory(), `${f} exists`)
  t.notOk(folders.includes('test'), 'tests are not packaged')
})

/** Every .ts file under the packaged folders. */
function productFiles(): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'build') continue
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p)
    }
  }
  for (const f of folders) walk(join(ROOT, f))
  return out
}

t.test('no product file imports or reads from outside the packaged folders', async t => {
  const files = productFiles()
  t.ok(files.length > 50, `${files.length} product files`)
  const inside = (p: string): boolean =>
    folders.some(f => p === join(ROOT, f) || p.startsWith(join(ROOT, f) + sep)) || p === join(ROOT, 'package.json')
  const outside: string[] = []
  for (const file of files) {
    const src = readFileSync(file, 'utf8')
    // static and dynamic imports, re-exports, import.meta.resolve
    for (const m of src.matchAll(
      /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|import\.meta\.resolve\(\s*)(['"])(\.{1,2}\/[^'"]*)\1/g
    )) {
      const target = resolve(dirname(file), m[2])
      if (!inside(target)) outside.push(`${relative(ROOT, file)} imports ${m[2]}`)
    }
    // paths built to reach the tests, e.g. join(here, '..', 'test', 'fixtures')
    if (/['"]test['"]\s*,|['"](?:\.\.\/)+test\//.test(src))
      outside.push(`${relative(ROOT, file)} builds a path into test/`)
  }
  t.same(outside, [], 'every import stays inside the package')
})

t.test('quorate runs from a copy of exactly the packaged folders', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-package-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  for (const p of copied) {
    if (p === 'node_modules') symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    else cpSync(join(ROOT, p), join(dir, p), { recursive: true })
  }
  const node = join(ROOT, 'node_modules', '.bin', 'node')
  const run = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    await new Promise(resolve => {
      // cwd elsewhere: nothing may be found relative to the repository
      execFile(
        node,
        ['--no-warnings=ExperimentalWarning', join(dir, 'cli', 'main.ts'), ...args],
        { cwd: tmpdir(), timeout: 120_000 },
        (err, stdout, stderr) => {
          resolve({
            code:
              err === null
                ? 0
                : typeof (err as { code?: unknown }).code === 'number'
                  ? (err as { code: number }).code
                  : -1,
            stdout,
            stderr
          })
        }
      )
    })
  const help = await run(['--help'])
  t.equal(help.code, 0, help.stderr)
  for (const c of ['chain', 'tpm', 'eventlog', 'demo', 'node'])
    t.match(help.stdout, new RegExp(`quorate ${c}\\b`), `--help lists ${c}`)
  const sample = join(dir, 'attestation', 'samples', 'measured-boot', 'ovmf-q35-smp2', 'eventlog.bin')
  const replay = await run(['eventlog', 'replay', sample, '--json'])
  t.equal(replay.code, 0, replay.stderr)
  t.equal(JSON.parse(replay.stdout).pcrs.sha256['7'].length, 64, 'the packaged sample boot replays')
  for (const c of [
    ['demo', '--help'],
    ['tpm', 'simulate', '--help'],
    ['node', 'start', '--help']
  ]) {
    const r = await run(c)
    t.equal(r.code, 0, `${c.join(' ')}: ${r.stderr}`)
  }
})
