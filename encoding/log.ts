// Injected, namespaced logging (STYLE.md §10). Components receive a Logger; nothing outside
// the CLI writes to the console directly. Output is one JSON line per record on stderr when
// enabled with QUORATE_LOG / DEBUG-style patterns (e.g. `quorate:*`, `quorate:chain:*`).
export type Level = 'debug' | 'info' | 'warn' | 'error'

export interface Logger {
  readonly name: string
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(sub: string): Logger
}

export interface LogSink {
  write(rec: Record<string, unknown>): void
}

const levels: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

function matcher(pattern: string): (name: string) => boolean {
  const parts = pattern
    .split(',')
    .map(p => p.trim())
    .filter(Boolean)
  const res = parts.map(p => new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$'))
  return name => res.some(r => r.test(name))
}

export interface LoggerOptions {
  /** Namespaces to log at debug level (`quorate:*`). Others log info and above. */
  debug?: string
  level?: Level
  sink?: LogSink
}

export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const sink = opts.sink ?? { write: rec => process.stderr.write(JSON.stringify(rec, jsonReplacer) + '\n') }
  const isDebug = matcher(opts.debug ?? process.env.QUORATE_LOG ?? '')
  const min = levels[opts.level ?? (process.env.QUORATE_LOG_LEVEL as Level | undefined) ?? 'info'] ?? levels.info
  const make = (n: string): Logger => {
    const dbg = isDebug(n)
    const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
      if (levels[level] < min && !(level === 'debug' && dbg)) return
      sink.write({ t: new Date().toISOString(), level, ns: n, msg, ...fields })
    }
    return {
      name: n,
      debug: (m, f) => {
        emit('debug', m, f)
      },
      info: (m, f) => {
        emit('info', m, f)
      },
      warn: (m, f) => {
        emit('warn', m, f)
      },
      error: (m, f) => {
        emit('error', m, f)
      },
      child: sub => make(`${n}:${sub}`)
    }
  }
  return make(name)
}

/** A logger that drops everything (tests, libraries used without a logger). */
export function silentLogger(name = 'quorate'): Logger {
  const l: Logger = { name, debug() {}, info() {}, warn() {}, error() {}, child: sub => silentLogger(`${name}:${sub}`) }
  return l
}

/**
 * JSON.stringify replacer for everything quorate prints or logs: bigints as decimal strings,
 * bytes as hex (also Buffers, which reach a replacer already in their toJSON form), Maps as
 * objects, Errors as { name, message }.
 */
export function jsonReplacer(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  if (
    v !== null &&
    typeof v === 'object' &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  ) {
    return Buffer.from((v as { data: number[] }).data).toString('hex')
  }
  if (v instanceof Map) return Object.fromEntries(v)
  if (v instanceof Error) return { name: v.name, message: v.message }
  return v
}
