// How every command prints. Commands compute a plain result object; with --json it is printed
// as one JSON line on stdout (bytes as hex, bigints as decimal strings), otherwise the
// human-readable text. Errors go to stderr with what to do next, and set the exit code.
import { QuorateError } from '../encoding/errors.ts'
import { jsonReplacer } from '../encoding/log.ts'

export interface GlobalArgs {
  json?: boolean
}

export function toJsonValue(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, jsonReplacer))
}

/** Prints `result` as JSON (with --json) or the human text. */
export function emit(argv: GlobalArgs, result: unknown, human: string | (() => string)): void {
  if (argv.json === true) process.stdout.write(JSON.stringify(toJsonValue(result)) + '\n')
  else process.stdout.write((typeof human === 'function' ? human() : human).replace(/\n?$/, '\n'))
}

/** Progress for long operations: stderr, never stdout (stdout stays machine-readable). */
export function progress(argv: GlobalArgs, msg: string): void {
  if (argv.json !== true || process.env.QUORATE_PROGRESS === '1') process.stderr.write(msg + '\n')
}

export class CliExit extends Error {
  readonly exitCode: number
  constructor(exitCode: number, message = '') {
    super(message)
    this.name = 'CliExit'
    this.exitCode = exitCode
  }
}

export function describeError(err: unknown): { message: string; json: Record<string, unknown> } {
  if (err instanceof QuorateError) {
    const next =
      err.disposition === 'retry'
        ? 'this may be temporary; try again'
        : err.disposition === 'reject'
          ? 'the input was refused; nothing was changed'
          : 'fix the configuration or environment and retry'
    return { message: `${err.name}: ${err.message} (${next})`, json: err.toJSON() }
  }
  if (err instanceof AggregateError) {
    const parts = err.errors.map(e => (e instanceof Error ? e.message : String(e)))
    return {
      message: `${err.message}\n  - ${parts.join('\n  - ')}`,
      json: { name: err.name, message: err.message, errors: parts }
    }
  }
  if (err instanceof Error)
    return { message: `${err.name}: ${err.message}`, json: { name: err.name, message: err.message } }
  return { message: String(err), json: { message: String(err) } }
}

/** Longest cell a table shows; longer values (certificates, proofs) are cut: --json has them whole. */
const MAX_CELL = 72

/** A cell: strings and numbers as they are, anything else as compact JSON (bytes as hex). */
function cell(v: unknown): string {
  if (v === undefined || v === null) return '-'
  const j = toJsonValue(v)
  const s = typeof j === 'string' || typeof j === 'number' || typeof j === 'boolean' ? String(j) : JSON.stringify(j)
  return s.length > MAX_CELL ? `${s.slice(0, MAX_CELL - 1)}…` : s
}

/**
 * The human form of a query result: a list of records as a table (one column per key, in
 * first-seen order), a record as aligned "key  value" lines, anything else as its text. Cells
 * longer than MAX_CELL characters are cut.
 */
export function renderTable(value: unknown): string {
  const v = toJsonValue(value)
  if (Array.isArray(v)) {
    if (v.length === 0) return '(none)'
    if (!v.every(r => r !== null && typeof r === 'object' && !Array.isArray(r))) return v.map(cell).join('\n')
    const rows = v as Array<Record<string, unknown>>
    const cols = [...new Set(rows.flatMap(r => Object.keys(r)))]
    const table = [cols, ...rows.map(r => cols.map(c => cell(r[c])))]
    const width = cols.map((_, i) => Math.max(...table.map(r => r[i].length)))
    const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]))).join('  ')
    return [line(cols), width.map(n => '-'.repeat(n)).join('  '), ...table.slice(1).map(line)].join('\n')
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
    // a record that wraps one list ({ ekCas: [...] }) is that list
    if (entries.length === 1 && Array.isArray(entries[0][1])) return `${entries[0][0]}:\n${renderTable(entries[0][1])}`
    const w = Math.max(0, ...entries.map(([k]) => k.length))
    return entries.map(([k, x]) => `${k.padEnd(w)}  ${cell(x)}`).join('\n')
  }
  return cell(v)
}
