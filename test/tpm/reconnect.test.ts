// The transport breaking under an open connection (TPM daemon restarted / unreachable): calls fail
// with a 'retry' TpmError while it is down, and the same Tpm object recovers afterwards. A TCP
// proxy in front of swtpm (data and ctrl ports) simulates the outage.
import t from 'tap'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { startSwtpm } from '../helpers/swtpm.ts'
import { openTpm, TpmError } from '../../attestation/tpm/index.ts'

const sw = await startSwtpm({ platformCert: false })
t.teardown(() => sw.stop())

let down = false
const sockets = new Set<Socket>()
function proxy(target: number): Server {
  return createServer(client => {
    if (down) {
      client.destroy()
      return
    }
    const upstream = connect({ host: '127.0.0.1', port: target })
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream).pipe(client)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
}
async function listen(s: Server, port: number): Promise<number | undefined> {
  return await new Promise(resolve => {
    s.once('error', () => {
      resolve(undefined)
    })
    s.listen(port, '127.0.0.1', () => {
      const a = s.address()
      resolve(typeof a === 'object' && a !== null ? a.port : undefined)
    })
  })
}
const data = proxy(sw.port)
const ctrl = proxy(sw.ctrlPort)
let port: number | undefined
for (let i = 0; i < 20 && port === undefined; i++) {
  const p = await listen(data, 0)
  if (p !== undefined && (await listen(ctrl, p + 1)) === p + 1) port = p
  else
    await new Promise<void>(resolve =>
      data.close(() => {
        resolve()
      })
    )
}
if (port === undefined) throw new Error('no consecutive free ports for the proxy')
t.teardown(() => {
  for (const s of sockets) s.destroy()
  data.close()
  ctrl.close()
})

t.test('outage: retryable TpmError, then the same connection recovers', async t => {
  const tpm = await openTpm({ tcti: `swtpm:host=127.0.0.1,port=${port}` })
  t.teardown(() => tpm.close())
  await tpm.ensureAk()
  t.equal((await tpm.getRandom(8)).length, 8)
  down = true
  for (const s of sockets) s.destroy()
  const err = await tpm
    .quote({ nonce: new Uint8Array(8), pcrs: [{ hash: 'sha256', pcrs: [0] }] })
    .catch((e: unknown) => e)
  t.type(err, TpmError)
  if (err instanceof TpmError) t.equal(err.disposition, 'retry', `${err.message} is retryable`)
  await t.rejects(tpm.getRandom(4), TpmError, 'still down')
  down = false
  t.equal((await tpm.getRandom(8)).length, 8, 'recovered without reopening by hand')
  t.ok((await tpm.quote({ nonce: new Uint8Array(8), pcrs: [{ hash: 'sha256', pcrs: [0] }] })).attest.length > 0)
  t.same(await tpm.transientHandles(), { objects: [], sessions: [] })
})
