// Where the CometBFT binary is: QUORATE_COMETBFT, then $(go env GOPATH)/bin (where
// scripts/setup.sh's `go install` puts it), then PATH. The pinned release is the one setup builds.
import { execFileSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { ConfigError } from '../../encoding/errors.ts'

/** The CometBFT release this app is built and tested against (ABCI 2.0). */
export const COMETBFT_VERSION = '0.38.26'

const executable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

let found: string | undefined

/** Path of a cometbft binary of the v0.38 series; ConfigError saying how to get one otherwise. */
export function cometbftBinary(): string {
  if (found !== undefined) return found
  const candidates: string[] = []
  if (process.env.QUORATE_COMETBFT !== undefined && process.env.QUORATE_COMETBFT !== '')
    candidates.push(process.env.QUORATE_COMETBFT)
  if (process.env.GOPATH !== undefined && process.env.GOPATH !== '')
    candidates.push(...process.env.GOPATH.split(delimiter).map(p => join(p, 'bin', 'cometbft')))
  candidates.push(join(homedir(), 'go', 'bin', 'cometbft'))
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d !== '') candidates.push(join(d, 'cometbft'))
  for (const c of candidates) {
    if (!executable(c)) continue
    let v: string
    try {
      v = execFileSync(c, ['version'], { encoding: 'utf8', timeout: 10_000 }).trim()
    } catch {
      continue
    }
    if (!v.startsWith('0.38.')) continue
    found = c
    return c
  }
  throw new ConfigError(
    `no CometBFT v0.38 binary found (looked at QUORATE_COMETBFT, $GOPATH/bin, ~/go/bin and PATH); run \`npm run setup\` (needs Go >= 1.22) or \`go install github.com/cometbft/cometbft/cmd/cometbft@v${COMETBFT_VERSION}\``
  )
}
