// The device TCTI, the one a node uses in production (device:/dev/tpmrm0), exercised against
// swtpm through a pseudo-terminal: socat bridges a raw pty to swtpm's command port, and the
// device TCTI writes commands to and reads responses from the pty exactly as it does with the
// kernel's character device. What must hold: the TPM works through it (AK, quote, random), and
// the descriptor tpm2-tss opened for it is close-on-exec — tpm2-tss does not set the flag, so
// without the addon setting it every process the agent starts (relays, docker helpers, tools)
// inherited the TPM device.
import t from 'tap'
import { readdirSync, readlinkSync, readFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { startSwtpm, ptyDevice } from '../helpers/swtpm.ts'
import { openTpm } from '../../attestation/tpm/index.ts'
import { verifyQuote } from '../../attestation/quote.ts'

const execFileP = promisify(execFile)

const sw = await startSwtpm({ platformCert: false })
t.teardown(() => sw.stop())
const dev = await ptyDevice(sw)
t.teardown(() => {
  dev.stop()
})
const pty = dev.path

/** This process's descriptors that point at the pty, with their open flags (octal, from fdinfo). */
function ptyFds(): Array<{ fd: string; flags: number }> {
  const out: Array<{ fd: string; flags: number }> = []
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = ''
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue
    }
    if (target !== pty) continue
    const line =
      readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
        .split('\n')
        .find(l => l.startsWith('flags:')) ?? 'flags: 0'
    out.push({ fd, flags: parseInt(line.split(/\s+/)[1], 8) })
  }
  return out
}

const O_CLOEXEC = 0o2000000

t.test('device TCTI through a pty: the TPM works, and its descriptor is not inherited by children', async t => {
  t.same(ptyFds(), [], 'nothing open on the pty yet')
  const tpm = await openTpm({ tcti: dev.tcti })
  t.teardown(() => tpm.close())
  t.equal((await tpm.getRandom(16)).byteLength, 16, 'GetRandom through the device TCTI')
  const ak = await tpm.ensureAk({ handle: 0x81000d01 })
  const nonce = randomBytes(16)
  const sel = [{ hash: 'sha256' as const, pcrs: [0, 1, 2] }]
  const q = await tpm.quote({ nonce, pcrs: sel, akHandle: ak.handle })
  const read = await tpm.pcrRead(sel)
  const pcrs = { sha256: Object.fromEntries([...read.banks[0].values].map(([i, v]) => [String(i), v])) }
  t.ok(
    verifyQuote({ attest: q.attest, signature: q.signature, akPublic: ak.public, pcrs }, { nonce }),
    'a quote through the device TCTI verifies (signature, nonce, PCR digest)'
  )

  const fds = ptyFds()
  t.equal(fds.length, 1, 'tpm2-tss holds one descriptor on the device')
  t.ok(
    fds.every(f => (f.flags & O_CLOEXEC) !== 0),
    `close-on-exec (flags ${fds.map(f => f.flags.toString(8)).join(', ')})`
  )
  // an ordinary child, started the way Node starts any: it must not see the device
  const { stdout } = await execFileP('ls', ['-l', '/proc/self/fd/'])
  t.notMatch(stdout, pty, 'a child process does not have the TPM device open')

  t.equal(await tpm.evict(ak.handle), true)
  await tpm.close()
  t.same(ptyFds(), [], 'closed with the connection')
})
