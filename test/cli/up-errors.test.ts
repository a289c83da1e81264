// `quorate up` / `down` refuse what they cannot do, say why, and change nothing: fewer agents than
// the genesis verifiers, a directory another up or down is working on, a directory holding some
// other chain, a down where no network was made.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DatabaseSync } from 'node:sqlite'
import { initChainHome } from '../../chain/index.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const work = mkdtempSync(join(tmpdir(), 'quorate-up-errors-'))
const env = { ...process.env, QUORATE_HOME: join(work, 'home') }
t.teardown(() => {
  rmSync(work, { recursive: true, force: true })
})

async function quorate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    const p = spawn(join(root, 'bin', 'quorate'), args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    p.once('exit', code => {
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('fewer agents than the genesis verifiers', async t => {
  const dir = join(work, 'few')
  const r = await quorate(['up', '--dir', dir, '--agents', '4'])
  t.equal(r.code, 1)
  t.match(r.stderr, /--agents must be 5/)
  t.notOk(existsSync(dir), 'nothing made')
})

t.test('a directory another up or down is working on', async t => {
  const dir = join(work, 'busy')
  mkdirSync(dir)
  // hold the directory's lock as a running `quorate up` does
  const db = new DatabaseSync(join(dir, 'localnet.lock'))
  db.exec('PRAGMA locking_mode=EXCLUSIVE')
  db.exec('BEGIN EXCLUSIVE')
  db.exec('COMMIT')
  t.teardown(() => {
    db.close()
  })
  const r = await quorate(['up', '--dir', dir])
  t.equal(r.code, 1)
  t.match(r.stderr, /another `quorate up` or `quorate down` is working on .*busy/)
  t.same(
    readdirSync(dir).filter(f => !f.startsWith('localnet.lock')),
    [],
    'nothing made'
  )
})

t.test('a directory holding a chain up did not make', async t => {
  const dir = join(work, 'other')
  await initChainHome({ home: join(dir, 'chain'), verifiers: [] })
  const r = await quorate(['up', '--dir', dir])
  t.equal(r.code, 1)
  t.match(r.stderr, /not a network `quorate up` made; choose another --dir/)
  t.notOk(existsSync(join(dir, 'localnet.json')))
})

t.test('down where no network was made', async t => {
  const r = await quorate(['down', '--dir', join(work, 'none')])
  t.equal(r.code, 1)
  t.match(r.stderr, /no local network in .*none/)
})
