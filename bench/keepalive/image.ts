// The serverless bench's test app: bench/keepalive/main.go, a keep-alive HTTP/1.1 server, built
// with the machine's Go into a temporary directory (no binary is committed) and packed into a
// one-layer `docker save` archive with containers/image-tar.ts, as the demo packs busybox.
// The static binary is ~2 MB, the size of the cold-start app in issue 13.
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, renameSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { buildImageTar, type BuiltImage } from '../../containers/image-tar.ts'
import { sha256, toHex } from '../../encoding/bytes.ts'
import { QuorateError } from '../../encoding/errors.ts'

const run = promisify(execFile)
const SOURCE = fileURLToPath(new URL('./main.go', import.meta.url))

/** Go is missing or failed to build the server: install Go ≥ 1.22 (https://go.dev/dl/ or Debian golang-go). */
export class GoBuildError extends QuorateError {
  override readonly code: string = 'ERR_GO_BUILD'
}

/**
 * Builds (once per source version; kept in <tmpdir>/quorate-keepalive-<hash>/) the static
 * keep-alive server and returns the binary's path.
 */
export async function buildKeepalive(): Promise<string> {
  const src = readFileSync(SOURCE)
  const dir = join(tmpdir(), `quorate-keepalive-${toHex(sha256(src)).slice(0, 16)}`)
  const bin = join(dir, 'keepalive')
  if (existsSync(bin)) return bin
  mkdirSync(dir, { recursive: true })
  const partial = `${bin}.${process.pid}`
  try {
    await run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', partial, SOURCE], {
      cwd: dir,
      // static, no toolchain download, no module proxy: only the standard library is used
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '', GOTOOLCHAIN: 'local', GOPROXY: 'off' },
      timeout: 300_000
    })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    throw new GoBuildError(
      e.code === 'ENOENT'
        ? 'Go is not installed: the keep-alive test server (bench/keepalive/main.go) is built with `go build`; install Go ≥ 1.22 (https://go.dev/dl/ or Debian golang-go)'
        : `go build of bench/keepalive/main.go failed: ${e.stderr?.trim() || e.message}`,
      { cause: err }
    )
  }
  renameSync(partial, bin) // whole or nothing, for concurrent builds
  return bin
}

export interface KeepaliveImageOptions {
  /** The binary from buildKeepalive(). */
  readonly binary: string
  /** Image labels (benches: quorate.test=<run>, so cleanup finds them). */
  readonly labels?: Readonly<Record<string, string>>
  /**
   * Distinguishes otherwise identical images (an env entry in the config), so that each run gets
   * its own image ID and nothing is reused from an earlier one.
   */
  readonly tag?: string
}

/**
 * A one-layer image: /bin/keepalive as entrypoint. Launch it with args `-p 127.0.0.1:<port>`
 * (and optionally `-b <body>`; the default body is "ok\n").
 */
export function keepaliveImage(o: KeepaliveImageOptions): BuiltImage {
  return buildImageTar({
    files: [{ path: 'bin' }, { path: 'bin/keepalive', content: readFileSync(o.binary), mode: 0o755 }],
    entrypoint: ['/bin/keepalive'],
    env: ['PATH=/bin', ...(o.tag !== undefined ? [`QUORATE_BENCH_TAG=${o.tag}`] : [])],
    labels: { ...o.labels }
  })
}

/** Arguments making the server listen on 127.0.0.1:port. */
export function keepaliveArgs(port: number, body?: string): string[] {
  return ['-p', `127.0.0.1:${port}`, ...(body !== undefined ? ['-b', body] : [])]
}
