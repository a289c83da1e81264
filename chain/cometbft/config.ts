// The few things we read and change in CometBFT's config.toml: single-line `key = value` entries
// in a named section ("" = before the first section header). Not a TOML parser: CometBFT writes
// the file from its own template, one entry per line, and that is the only file this edits.
import { ConfigError } from '../../encoding/errors.ts'

export type TomlValue = string | number | boolean

const render = (v: TomlValue): string => (typeof v === 'string' ? JSON.stringify(v) : String(v))

/** `text` with `key` in `section` set to `value`; refuses a key the template does not have. */
export function setTomlValue(text: string, section: string, key: string, value: TomlValue): string {
  const lines = text.split('\n')
  let current = ''
  for (let i = 0; i < lines.length; i++) {
    const h = /^\s*\[([^\]]+)\]\s*$/.exec(lines[i])
    if (h !== null) {
      current = h[1].trim()
      continue
    }
    if (current !== section) continue
    const m = /^(\s*)([A-Za-z0-9_.-]+)\s*=/.exec(lines[i])
    if (m !== null && m[2] === key) {
      lines[i] = `${m[1]}${key} = ${render(value)}`
      return lines.join('\n')
    }
  }
  throw new ConfigError(
    `config.toml has no ${section === '' ? '' : `[${section}] `}${key}; is this a CometBFT v0.38 config?`
  )
}

export function setTomlValues(text: string, values: Record<string, Record<string, TomlValue>>): string {
  for (const [section, kv] of Object.entries(values)) {
    for (const [k, v] of Object.entries(kv)) text = setTomlValue(text, section, k, v)
  }
  return text
}

/** The string value of `key` in `section`, or undefined. */
export function getTomlString(text: string, section: string, key: string): string | undefined {
  let current = ''
  for (const line of text.split('\n')) {
    const h = /^\s*\[([^\]]+)\]\s*$/.exec(line)
    if (h !== null) {
      current = h[1].trim()
      continue
    }
    if (current !== section) continue
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(line)
    if (m !== null && m[1] === key) return JSON.parse(`"${m[2]}"`) as string
  }
  return undefined
}

/** host:port of a tcp:// listen address (CometBFT's laddr). */
export function tcpHostPort(laddr: string): { host: string; port: number } {
  const m = /^(?:tcp:\/\/)?(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(laddr)
  if (m === null) throw new ConfigError(`not a tcp://host:port address: ${laddr}`)
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}
