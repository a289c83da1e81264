// One validator per home, decided by a lock the kernel drops when the holder dies: a second live
// validator is refused; a validator killed with SIGKILL frees the home at once, even while it is
// still a zombie nobody has reaped; a pid file naming some live process decides nothing.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { initChainHome, startEmbeddedValidator, chainPaths } from '../../chain/validator.ts'
import { ChainClient } from '../../chain/client.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { BIN, startChainProcess } from './process.ts'

const rules = createTestOnlyQuorumRules()

async function newHome(t: Test, chainId: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'quorate-chain-lock-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId })
  return home
}

/** The process state letter from /proc/<pid>/stat (R, S, Z, …), or undefined once it is gone. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return undefined
  }
}

t.test('two live validators on one home: the second is refused, naming the first', async t => {
  const home = await newHome(t, 'lock-live')
  const v = await startEmbeddedValidator({ home, rules, blockIntervalMs: 0 })
  let stopped = false
  t.teardown(async () => {
    if (!stopped) await v.stop()
  })
  await t.rejects(startEmbeddedValidator({ home, rules }), {
    name: 'ConfigError',
    message: new RegExp(
      `another validator \\(pid ${process.pid}\\) is running on this home: it holds the lock .*validator\\.lock; stop it first`
    )
  })
  const c = new ChainClient({ url: v.url })
  t.ok((await c.status()).height >= 0, 'the first one still serves')
  c.close()
  await v.stop()
  stopped = true
  const again = await startEmbeddedValidator({ home, rules })
  t.ok(again.url, 'after a clean stop the home is free')
  await again.stop()
})

t.test('a pid file naming a live process (a reused pid) does not hold the home', async t => {
  const home = await newHome(t, 'lock-pid')
  const other = spawn('sleep', ['60'])
  t.teardown(() => {
    other.kill()
  })
  await once(other, 'spawn')
  await writeFile(join(chainPaths(home).data, 'validator.pid'), String(other.pid))
  const v = await startEmbeddedValidator({ home, rules })
  t.ok(v.url, 'started although the pid file names a live process')
  t.equal(
    (await readFile(join(chainPaths(home).data, 'validator.pid'), 'utf8')).trim(),
    String(process.pid),
    'the pid file now names the holder'
  )
  await v.stop()
})

t.test('kill -9, then restart at once while the dead validator is still an unreaped zombie', async t => {
  const home = await newHome(t, 'lock-zombie')
  // The validator runs as the child of a shell that then execs `sleep`: sleep never reaps, so
  // after SIGKILL the validator stays a zombie for as long as this test wants.
  const parent = spawn(
    'sh',
    [
      '-c',
      `"$0" chain start --home "$1" --rpc 127.0.0.1:0 --block-interval 20 --empty-block-interval 300 --json & echo "pid $!"; exec sleep 600`,
      BIN,
      home
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] }
  )
  t.teardown(() => {
    parent.kill('SIGKILL')
  })
  let out = ''
  const started = new Promise<{ pid: number; url: string }>((resolve, reject) => {
    parent.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const pid = /^pid (\d+)$/m.exec(out)
      const url = /"rpc":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)
      if (pid !== null && url !== null) resolve({ pid: Number(pid[1]), url: url[1] })
    })
    parent.once('exit', code => {
      reject(new Error(`the shell exited with ${code}: ${out}`))
    })
  })
  const first = await started
  const c1 = new ChainClient({ url: first.url })
  t.ok((await c1.status()).height >= 0, 'the first validator serves')
  c1.close()
  process.kill(first.pid, 'SIGKILL')
  // wait for the kernel to finish the kill: the process turns into a zombie (state Z)
  let state = await procState(first.pid)
  for (let i = 0; i < 500 && state !== 'Z'; i++) {
    await new Promise(resolve => setTimeout(resolve, 10))
    state = await procState(first.pid)
  }
  t.equal(state, 'Z', `validator ${first.pid} is a zombie: killed, not reaped`)
  t.equal(
    (await readFile(join(chainPaths(home).data, 'validator.pid'), 'utf8')).trim(),
    String(first.pid),
    'its pid file is still there'
  )

  const second = await startChainProcess(home)
  t.teardown(() => {
    second.proc.kill('SIGKILL')
  })
  const c = new ChainClient({ url: second.url })
  t.ok((await c.status()).height >= 0, 'a new validator starts on the home at once')
  t.equal(await procState(first.pid), 'Z', 'while the old one is still a zombie')
  c.close()
})
