// Shared by the container tests and bench/containers.ts: busybox images built without a
// registry or base image, free ports, and cleanup of everything labelled for one test run.
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import Docker from 'dockerode'
import { buildImageTar, type BuiltImage, type TarFile } from '../../containers/image-tar.ts'

export const BUSYBOX = '/bin/busybox'

export interface BusyboxImageOptions {
  /** Value of the `quorate.test` label (unique per test run). */
  readonly testLabel: string
  /** Body of /www/index.html. */
  readonly body?: string
  /** Extra random bytes in /pad.bin (to make large images). */
  readonly padBytes?: number
  readonly layout?: 'oci' | 'legacy'
}

/** A one-layer image: /bin/busybox (busybox-static) serving /www with `httpd -f -h /www`. */
export function busyboxImage(opts: BusyboxImageOptions): BuiltImage {
  const files: TarFile[] = [
    { path: 'bin' },
    { path: 'bin/busybox', content: readFileSync(BUSYBOX), mode: 0o755 },
    { path: 'www' },
    { path: 'www/index.html', content: new TextEncoder().encode(opts.body ?? `hello from ${opts.testLabel}\n`) }
  ]
  if ((opts.padBytes ?? 0) > 0) files.push({ path: 'pad.bin', content: randomBytes(opts.padBytes ?? 0) })
  return buildImageTar({
    files,
    entrypoint: ['/bin/busybox', 'httpd', '-f', '-h', '/www'],
    labels: { 'quorate.test': opts.testLabel },
    layout: opts.layout
  })
}

/** Arguments making the image listen on 127.0.0.1:port (its loopback: the node's with host networking). */
export function httpdArgs(port: number): string[] {
  return ['-p', `127.0.0.1:${port}`]
}

// one free-port probe for the whole project (cli/demo.ts)
export { freePort } from '../../cli/demo.ts'

export function uniqueLabel(what: string): string {
  return `${what}-${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Removes every container and image carrying `quorate.test=<label>`. */
export async function cleanupDocker(docker: Docker, label: string): Promise<void> {
  const filters = JSON.stringify({ label: [`quorate.test=${label}`] })
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => {})
  }
  for (const i of await docker.listImages({ all: true, filters })) {
    await docker
      .getImage(i.Id)
      .remove({ force: true })
      .catch(() => {})
  }
}

export async function imageExists(docker: Docker, id: string): Promise<boolean> {
  try {
    await docker.getImage(id).inspect()
    return true
  } catch {
    return false
  }
}
