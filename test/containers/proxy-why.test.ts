// containers/proxy.ts's 404 for an image with nothing running (issue 12): the `why` hook's answer
// is the body's `reason` — given synchronously or as a promise; a hook that fails or has nothing to
// say still gives the plain 404. The agent's hook is agent/tenants.ts (test/agent/tenants-why.test.ts).
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createTenantProxy } from '../../containers/proxy.ts'

const asked: string[] = []
const proxy = createTenantProxy({
  certification: () => ({ certified: true }),
  resolve: () => undefined,
  why: image => {
    asked.push(image)
    if (image === 'sync') return 'image "sync" is not deployed on this node'
    if (image === 'later') return Promise.resolve('its last launch failed: no provider holds bafyexample')
    if (image === 'broken') throw new Error('chain unreachable')
    if (image === 'rejects') return Promise.reject(new Error('chain unreachable'))
    return undefined
  }
})
const server = createServer(proxy.handler)
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
t.teardown(() => {
  server.close()
  proxy.close()
})

const get = async (image: string): Promise<{ status: number; body: { error: string; reason?: string } }> => {
  const r = await fetch(`${base}/tenant/${image}/x`)
  return { status: r.status, body: (await r.json()) as { error: string; reason?: string } }
}

t.test('the hook says why nothing runs', async t => {
  const a = await get('sync')
  t.equal(a.status, 404)
  t.equal(a.body.error, 'no running container for image "sync"')
  t.equal(a.body.reason, 'image "sync" is not deployed on this node', 'synchronous reason')
  const b = await get('later')
  t.equal(b.status, 404)
  t.equal(b.body.reason, 'its last launch failed: no provider holds bafyexample', 'asynchronous reason')
  t.same(asked.slice(0, 2), ['sync', 'later'], 'asked with the image name')
})

t.test('a failing or silent hook still answers the plain 404', async t => {
  for (const image of ['broken', 'rejects', 'quiet']) {
    const r = await get(image)
    t.equal(r.status, 404, image)
    t.equal(r.body.error, `no running container for image "${image}"`)
    t.notOk('reason' in r.body, `${image}: no reason`)
  }
})

t.test('not certified: 503 before the hook is asked', async t => {
  const n = asked.length
  const p = createTenantProxy({
    certification: () => ({ certified: false, reason: 'expired' }),
    resolve: () => undefined,
    why: image => {
      asked.push(image)
      return 'never'
    }
  })
  const s = createServer(p.handler)
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const r = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/tenant/x/`)
  t.equal(r.status, 503)
  await r.body?.cancel()
  t.equal(asked.length, n, 'not asked')
  s.close()
  p.close()
})
