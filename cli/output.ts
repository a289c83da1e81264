// How every command prints. Commands compute a plain result object; with --json it is printed
// as one JSON line on stdout (bytes as hex, bigints as decimal strings), otherwise the
// human-readable text. Errors go to stderr with what to do next, and set the exit code.
import { QuorateError } from '../encoding/errors.ts'
import { jsonReplacer } from '../encoding/log.ts'

export interface GlobalArgs {
  json?: boolean
}

export function toJsonValue (v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, jsonReplacer))
}

/** Prints `result` as JSON (with --json) or the human text. */
export function emit (argv: GlobalArgs, result: unknown, human: string | (() => string)): void {
  if (argv.json === true) process.stdout.write(JSON.stringify(toJsonValue(result)) + '\n')
  else process.stdout.write((typeof human === 'function' ? human() : human).replace(/\n?$/, '\n'))
}

/** Progress for long operations: stderr, never stdout (stdout stays machine-readable). */
export function progress (argv: GlobalArgs, msg: string): void {
  if (argv.json !== true || process.env.QUORATE_PROGRESS === '1') process.stderr.write(msg + '\n')
}

export class CliExit extends Error {
  readonly exitCode: number
  constructor (exitCode: number, message = '') {
    super(message)
    this.name = 'CliExit'
    this.exitCode = exitCode
  }
}

export function describeError (err: unknown): { message: string, json: Record<string, unknown> } {
  if (err instanceof QuorateError) {
    const next = err.disposition === 'retry' ? 'this may be temporary; try again' : err.disposition === 'reject' ? 'the input was refused; nothing was changed' : 'fix the configuration or environment and retry'
    return { message: `${err.name}: ${err.message} (${next})`, json: err.toJSON() }
  }
  if (err instanceof AggregateError) {
    const parts = err.errors.map(e => (e instanceof Error ? e.message : String(e)))
    return { message: `${err.message}\n  - ${parts.join('\n  - ')}`, json: { name: err.name, message: err.message, errors: parts } }
  }
  if (err instanceof Error) return { message: `${err.name}: ${err.message}`, json: { name: err.name, message: err.message } }
  return { message: String(err), json: { message: String(err) } }
}
