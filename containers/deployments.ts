// Deployments are node configuration, not chain transactions: the chain says what MAY run
// (published, not revoked), the operator says what this node DOES run. `quorate deploy` writes
// <home>/deployments.json; the agent reads it at start (and on reload) and launches each entry
// through the gate once the node is certified, again after every re-certification.
import { readFile, writeFile, rename } from 'node:fs/promises'
import { InvalidInputError } from '../encoding/errors.ts'
import { checkImageName } from './publish.ts'

export interface Deployment {
  /** Image name on chain. */
  readonly image: string
  /** Port the container answers on at 127.0.0.1 (its own loopback when isolated, the node's with host networking). */
  readonly port: number
  readonly args?: readonly string[]
  readonly env?: readonly string[]
  readonly healthPath?: string
  /** IPFS peers known to hold the image (multiaddrs with /p2p/). */
  readonly providers?: readonly string[]
  readonly memoryBytes?: number
  readonly pids?: number
  readonly user?: string
}

export function validateDeployment(d: unknown, where = 'deployment'): Deployment {
  const x = d as Partial<Record<keyof Deployment, unknown>>
  if (typeof x !== 'object' || x === null) throw new InvalidInputError(`${where}: expected an object`)
  if (typeof x.image !== 'string') throw new InvalidInputError(`${where}.image: expected a string`)
  checkImageName(x.image)
  if (typeof x.port !== 'number' || !Number.isInteger(x.port) || x.port < 1 || x.port > 65535)
    throw new InvalidInputError(`${where}.port: expected a TCP port`)
  const strs = (k: 'args' | 'env' | 'providers'): void => {
    const v = x[k]
    if (v !== undefined && (!Array.isArray(v) || !v.every(s => typeof s === 'string')))
      throw new InvalidInputError(`${where}.${k}: expected a list of strings`)
  }
  strs('args')
  strs('env')
  strs('providers')
  if (Array.isArray(x.env) && !x.env.every(e => /^[A-Za-z_][A-Za-z0-9_]*=/.test(e as string)))
    throw new InvalidInputError(`${where}.env: expected KEY=value entries`)
  for (const k of ['memoryBytes', 'pids'] as const)
    if (x[k] !== undefined && (typeof x[k] !== 'number' || !Number.isSafeInteger(x[k]) || (x[k] as number) <= 0))
      throw new InvalidInputError(`${where}.${k}: expected a positive integer`)
  if (x.healthPath !== undefined && (typeof x.healthPath !== 'string' || !x.healthPath.startsWith('/')))
    throw new InvalidInputError(`${where}.healthPath: expected a path starting with /`)
  if (x.user !== undefined && typeof x.user !== 'string')
    throw new InvalidInputError(`${where}.user: expected a string`)
  return x as Deployment
}

export async function readDeployments(path: string): Promise<Deployment[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new InvalidInputError(`${path} is not valid JSON`, { cause: err })
  }
  const list = (v as { deployments?: unknown }).deployments
  if (!Array.isArray(list)) throw new InvalidInputError(`${path}: expected { "deployments": [...] }`)
  return list.map((d, i) => validateDeployment(d, `${path}: deployments[${i}]`))
}

/** Adds or replaces (by image name) a deployment; written atomically. */
export async function upsertDeployment(path: string, d: Deployment): Promise<Deployment[]> {
  const list = (await readDeployments(path)).filter(x => x.image !== d.image)
  list.push(validateDeployment(d))
  await writeDeployments(path, list)
  return list
}

export async function removeDeployment(path: string, image: string): Promise<boolean> {
  const list = await readDeployments(path)
  const next = list.filter(x => x.image !== image)
  if (next.length === list.length) return false
  await writeDeployments(path, next)
  return true
}

async function writeDeployments(path: string, list: readonly Deployment[]): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify({ deployments: list }, null, 2) + '\n', { mode: 0o644 })
  await rename(tmp, path)
}
