// The way into an isolated tenant. In the 'isolated' network mode a tenant runs in a network
// namespace of its own with a loopback interface and nothing else — no route to the node's
// loopback services (swtpm, chain RPC, the agent API, other tenants), nor out: Docker's network
// mode 'none', or (faster to start) the namespace of a single-use holder the runner made ahead of
// time with 'none' (`container:<holder>`, runner.ts). Either way the relay enters the tenant's.
// The agent reaches it through a relay: socat, started inside the container's network namespace
// (`nsenter --net`, the mount namespace stays the host's), listening on a unix socket in the
// agent's run directory and connecting to 127.0.0.1:<port> inside the container. Only the agent
// (the socket is 0600, root's) can open it.
//
// A relay is its own process group (socat forks one child per connection), stopped with the
// container. A pid file next to the socket lets a restarted agent stop relays an earlier run left.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ContainerStartError } from './errors.ts'
import { spawnClean } from '../encoding/process.ts'

/** sockaddr_un.sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107
const READY_TIMEOUT_MS = 5_000

export interface Relay {
  readonly socketPath: string
  readonly pid: number
  /** Stops socat and every connection it forked; removes the socket and pid file. */
  stop(): Promise<void>
}

/** Where the relay for a container listens: `<dir>/<first 12 hex of the id>.sock`. */
export function relaySocketPath(dir: string, containerId: string): string {
  const p = join(dir, `${containerId.slice(0, 12)}.sock`)
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH)
    throw new ContainerStartError(
      `relay socket path ${p} is longer than a unix socket path may be (${MAX_SOCKET_PATH} bytes); choose a shorter run directory`
    )
  return p
}

/** What to do about a relay that would not start, from what nsenter/socat said. */
function relayHint(stderr: string, exited: string): string {
  if (/not permitted|permission denied/i.test(stderr))
    return 'entering a container\'s network namespace takes CAP_SYS_ADMIN and CAP_SYS_PTRACE (run the agent as root, or with those capabilities as the NixOS module grants them), or use containerNetwork "host"'
  if (/ENOENT|not found|No such file/i.test(stderr + exited))
    return 'nsenter (util-linux) and socat must be installed for isolated tenants'
  return 'isolated tenants need nsenter (util-linux) and socat, and the capabilities to enter a network namespace'
}

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false
  }
}

/**
 * Starts socat in the network namespace of process `pid` (the container's init), relaying
 * `socketPath` to 127.0.0.1:`port` there. Resolves once the socket exists.
 */
export async function startRelay(opts: {
  pid: number
  port: number
  socketPath: string
  signal?: AbortSignal
}): Promise<Relay> {
  const { pid, port, socketPath } = opts
  if (!Number.isInteger(pid) || pid <= 1)
    throw new ContainerStartError(`cannot relay to a container without a process (pid ${pid})`)
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ContainerStartError(`relay port ${port} is not a TCP port`)
  mkdirSync(join(socketPath, '..'), { recursive: true, mode: 0o700 })
  rmSync(socketPath, { force: true })
  // without the agent's stray descriptors (a TPM socket kept by socat would block the TPM)
  const child = spawnClean(
    'nsenter',
    [
      '--target',
      String(pid),
      '--net',
      '--',
      'socat',
      // socat listens with a backlog of 5 by default: a burst of requests (the ones queued for
      // a cold start, all sent when it is ready) found it full and failed with EAGAIN
      `UNIX-LISTEN:${socketPath},fork,mode=600,unlink-early,backlog=256`,
      `TCP4:127.0.0.1:${port}`
    ],
    {
      detached: true, // its own process group: stop() reaches the per-connection children too
      stdio: ['ignore', 'ignore', 'pipe']
    }
  )
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-2000)
  })
  let exited: string | undefined
  const exit = new Promise<void>(resolve => {
    child.once('exit', (code, sig) => {
      exited = sig !== null ? `signal ${sig}` : `exit code ${String(code)}`
      resolve()
    })
    child.once('error', err => {
      exited = err.message
      resolve()
    })
  })
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!existsSync(socketPath)) {
    if (exited !== undefined)
      throw new ContainerStartError(
        `relay into the container could not start (${exited}): ${stderr.trim() || 'no output'} — ${relayHint(stderr, exited)}`
      )
    if (opts.signal?.aborted === true || Date.now() > deadline) {
      killGroup(child.pid ?? 0, 'SIGKILL')
      throw new ContainerStartError(`relay socket ${socketPath} did not appear within ${READY_TIMEOUT_MS} ms`)
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  const childPid = child.pid as number // spawned: the socket exists
  writeFileSync(`${socketPath}.pid`, `${childPid}\n`, { mode: 0o600 })
  let stopping: Promise<void> | undefined
  return {
    socketPath,
    pid: childPid,
    stop: async () => {
      stopping ??= (async () => {
        if (exited === undefined && killGroup(childPid, 'SIGTERM')) {
          const timer = setTimeout(() => {
            killGroup(childPid, 'SIGKILL')
          }, 2000)
          await exit
          clearTimeout(timer)
        }
        killGroup(childPid, 'SIGKILL') // per-connection children still draining
        rmSync(socketPath, { force: true })
        rmSync(`${socketPath}.pid`, { force: true })
      })()
      await stopping
    }
  }
}

/**
 * Stops relays an earlier run left in `dir` (their pid files), checking that each pid still is
 * a socat for that socket before signalling it, and removes `dir` once empty. Returns how many
 * were stopped.
 */
export function stopLeftoverRelays(dir: string): number {
  let n = 0
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return 0
  }
  for (const name of names) {
    if (!name.endsWith('.sock.pid')) continue
    const pidFile = join(dir, name)
    const socketPath = pidFile.slice(0, -'.pid'.length)
    const pid = Number(readFileSync(pidFile, 'utf8').trim())
    let cmdline = ''
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {}
    if (
      Number.isInteger(pid) &&
      pid > 1 &&
      cmdline.includes('socat') &&
      cmdline.includes(socketPath) &&
      killGroup(pid, 'SIGKILL')
    )
      n++
    rmSync(pidFile, { force: true })
    rmSync(socketPath, { force: true })
  }
  // the node's relay directory, once empty, goes too (startRelay makes it again)
  try {
    rmdirSync(dir)
  } catch {}
  return n
}
