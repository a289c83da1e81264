// The RPC bounds what clients make the validator hold (issue 9 item 12: 1,500 connections each
// declaring a 1 MiB body took a validator from 126 MB to 1.7 GB). A real `quorate chain start`
// process gets 1,500 uploads at once — a third declaring 1 MiB, the rest 250 KiB of which they
// send half and then hang — and its resident memory must stay within 100 MB of where it was
// while blocks go on being produced and the RPC still answers.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startChainProcess } from './process.ts'
import { initChainHome } from '../../chain/validator.ts'
import { ChainClient } from '../../chain/client.ts'

const UPLOADS = 1500
const BIG = 1024 * 1024
const DECLARED = 250 * 1024
const SENT = 128 * 1024

async function rssBytes(pid: number): Promise<number> {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1]) * 1024
}

interface Upload {
  socket: Socket
  answer: string
  closed: boolean
}

/** Starts one upload: headers declaring `declared` bytes, then `send` bytes of body, then nothing. */
function upload(port: number, declared: number, send: number, onClose: () => void): Upload {
  const u: Upload = { socket: connect(port, '127.0.0.1'), answer: '', closed: false }
  u.socket.on('data', (d: Buffer) => {
    u.answer += d.toString('latin1')
  })
  u.socket.on('error', () => {}) // a reset after the server refused: `closed` says it
  u.socket.on('close', () => {
    u.closed = true
    onClose()
  })
  u.socket.on('connect', () => {
    const head = `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`
    const body = '{"jsonrpc":"2.0","id":1,"method":"health","params":{"pad":"' + 'a'.repeat(send)
    u.socket.write(head + body.slice(0, send))
  })
  return u
}

t.test('1,500 slow uploads: memory bounded, blocks go on, the RPC answers', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-rpc-memory-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'rpc-memory' })
  const chain = await startChainProcess(home)
  t.teardown(() => {
    chain.proc.kill('SIGKILL')
  })
  const pid = chain.proc.pid ?? 0
  const port = Number(new URL(chain.url).port)
  const c = new ChainClient({ url: chain.url, timeoutMs: 10_000 })
  t.teardown(() => {
    c.close()
  })
  const h0 = (await c.waitForHeight(2)).height
  const before = await rssBytes(pid)

  // The server may hold as many 250 KiB uploads as its 32 MiB budget takes; every other one must
  // be closed by it (413, 503, or dropped over the connection limit). Wait for exactly that.
  const mayHold = Math.floor((32 * 2 ** 20) / DECLARED)
  let closed = 0
  let settled!: () => void
  const allButHeldClosed = new Promise<void>(resolve => {
    settled = resolve
  })
  const onClose = (): void => {
    if (++closed === UPLOADS - mayHold) settled()
  }
  const uploads = Array.from({ length: UPLOADS }, (_, i) =>
    i % 3 === 0 ? upload(port, BIG, 64 * 1024, onClose) : upload(port, DECLARED, SENT, onClose)
  )
  t.teardown(() => {
    for (const u of uploads) u.socket.destroy()
  })
  let timer: NodeJS.Timeout | undefined
  const gaveUp = new Promise<void>(resolve => {
    timer = setTimeout(resolve, 60_000)
  })
  await Promise.race([allButHeldClosed, gaveUp])
  clearTimeout(timer)
  const held = uploads.filter(u => !u.closed)
  const status = (u: Upload): string => /^HTTP\/1\.1 (\d{3})/.exec(u.answer)?.[1] ?? 'none'
  const refused = new Map<string, number>()
  for (const u of uploads) refused.set(status(u), (refused.get(status(u)) ?? 0) + 1)
  t.comment(`uploads: ${held.length} held open by the server; answers ${JSON.stringify(Object.fromEntries(refused))}`)
  t.ok(held.length <= mayHold, `at most ${mayHold} uploads held (${held.length})`)
  t.ok((refused.get('413') ?? 0) > 0, 'declared 1 MiB bodies refused from their Content-Length (413)')
  t.ok((refused.get('503') ?? 0) > 0, 'uploads beyond the buffered-bytes budget refused (503)')
  t.ok(
    held.every(u => u.answer === ''),
    'the held ones are still uploading (no answer yet)'
  )

  // while they hang: blocks are produced and a new client is answered
  const h1 = (await c.waitForHeight(h0 + 3)).height
  t.ok(h1 >= h0 + 3, `height ${h0} → ${h1} while ${held.length} uploads hang`)
  const during = await rssBytes(pid)
  t.comment(
    `validator RSS ${(before / 2 ** 20).toFixed(0)} MB before, ${(during / 2 ** 20).toFixed(0)} MB with the uploads hanging`
  )
  t.ok(during - before < 100 * 2 ** 20, `RSS grew ${((during - before) / 2 ** 20).toFixed(0)} MB (< 100 MB)`)
  t.ok(
    held.every(u => !u.closed),
    'the uploads were still open while measured'
  )
})
