// Runs inside a test's network namespace: JSON-RPC calls arrive as JSON lines on stdin
// ({ id, url, method, params }) and answers leave as JSON lines on stdout ({ id, result } or
// { id, error }). The test process in the root namespace reaches validators whose addresses
// exist only inside the namespaces this way.
import { createInterface } from 'node:readline'

const rl = createInterface({ input: process.stdin })
rl.on('line', line => {
  const { id, url, method, params } = JSON.parse(line) as { id: number; url: string; method: string; params: unknown }
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal: AbortSignal.timeout(5000)
  })
    .then(async r => (await r.json()) as { result?: unknown; error?: unknown })
    .then(j => {
      process.stdout.write(JSON.stringify({ id, result: j.result, error: j.error }) + '\n')
    })
    .catch((err: unknown) => {
      process.stdout.write(JSON.stringify({ id, error: String(err) }) + '\n')
    })
})
