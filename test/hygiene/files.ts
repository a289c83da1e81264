// The product's TypeScript sources: the folders nixos/package.nix ships, without tests or bench.
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const PRODUCT_DIRS = ['agent', 'attestation', 'chain', 'containers', 'cli', 'encoding'] as const

/** Absolute paths of every .ts file (declaration files excluded) under the product folders. */
export function productFiles(): string[] {
  const out: string[] = []
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'build') walk(p)
      } else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        out.push(p)
      }
    }
  }
  for (const d of PRODUCT_DIRS) walk(join(ROOT, d))
  return out.sort()
}
