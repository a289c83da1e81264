// Every error the product throws is a QuorateError with a disposition (issue 9 item 7): a plain
// Error / TypeError / RangeError tells the caller neither what failed nor whether to retry, stop
// or reject. This scans the product folders so such a throw cannot come back unnoticed.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { ROOT, productFiles } from './files.ts'
import {
  ConfigError,
  DecodeError,
  InvalidInputError,
  PolicyViolationsError,
  QuorateError,
  TooLargeError,
  TransientError
} from '../../encoding/errors.ts'
import { QuoteError } from '../../attestation/quote.ts'
import { fromHex } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { Writer } from '../../attestation/reader.ts'

const BUILTIN = '(?:Error|TypeError|RangeError|SyntaxError|ReferenceError|AggregateError)'
/** A built-in error thrown, or handed to a promise's reject, where a caller receives it. */
const PLAIN_THROW = new RegExp(`(?:\\bthrow\\s+|\\breject\\(\\s*|Promise\\.reject\\(\\s*)new\\s+${BUILTIN}\\s*\\(`)
const EXTENDS_BUILTIN = new RegExp(`class\\s+([A-Za-z0-9_$]+)\\s+extends\\s+${BUILTIN}\\b`)

/**
 * Classes that extend a built-in error on purpose: none reaches a caller as a thrown error; each is
 * caught inside its module and turned into something else.
 */
const INTERNAL_ERROR_CLASSES: Readonly<Record<string, string>> = {
  'encoding/errors.ts:QuorateError': 'the base of every product error',
  'attestation/canondigest.ts:Unsupported':
    'control flow: caught in the same file, which falls back to the generic encoder',
  'chain/app.ts:TxFail': 'becomes a transaction result code inside the state machine; never thrown out of apply',
  'chain/rpc-jsonrpc.ts:RpcError': 'becomes a JSON-RPC error object in the HTTP response',
  'cli/output.ts:CliExit': "the CLI's exit signal with an exit code, caught by cli/main.ts"
}

interface Hit {
  readonly where: string
  readonly line: string
}

function scan(): { throws: Hit[]; classes: Hit[] } {
  const throws: Hit[] = []
  const classes: Hit[] = []
  for (const file of productFiles()) {
    const rel = relative(ROOT, file)
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, '')
        if (PLAIN_THROW.test(code)) throws.push({ where: `${rel}:${i + 1}`, line: line.trim() })
        const m = EXTENDS_BUILTIN.exec(code)
        if (m !== null && INTERNAL_ERROR_CLASSES[`${rel}:${m[1] ?? ''}`] === undefined)
          classes.push({ where: `${rel}:${i + 1}`, line: line.trim() })
      })
  }
  return { throws, classes }
}

t.test('the scanner finds what it is looking for', async t => {
  t.ok(PLAIN_THROW.test("throw new Error('x')"))
  t.ok(PLAIN_THROW.test('throw new TypeError(`x`)'))
  t.ok(PLAIN_THROW.test("reject(new RangeError('x'))"))
  t.notOk(PLAIN_THROW.test("throw new DecodeError('x')"), 'a QuorateError subclass')
  t.notOk(PLAIN_THROW.test("stream.abort(new Error('round abandoned'))"), 'a cancellation reason handed to a stream')
  t.equal(EXTENDS_BUILTIN.exec('export class Foo extends Error {')?.[1], 'Foo')
  t.equal(EXTENDS_BUILTIN.exec('class Foo extends QuorateError {'), null)
  t.ok(productFiles().length > 50, 'the product folders are read')
})

t.test('no plain Error, TypeError or RangeError is thrown by the product', async t => {
  const { throws } = scan()
  t.same(
    throws.map(h => `${h.where}: ${h.line}`),
    [],
    'throw a QuorateError subclass (encoding/errors.ts) with its disposition instead'
  )
})

t.test('no product error class extends a built-in error except the documented internal ones', async t => {
  const { classes } = scan()
  t.same(
    classes.map(h => `${h.where}: ${h.line}`),
    [],
    'extend QuorateError (or one of its subclasses) instead'
  )
})

t.test('representative errors carry their disposition and code', async t => {
  const cases: Array<[QuorateError, string, string]> = [
    [new InvalidInputError('x'), 'reject', 'ERR_INVALID_INPUT'],
    [new DecodeError('x'), 'reject', 'ERR_DECODE'],
    [new TooLargeError('x'), 'reject', 'ERR_TOO_LARGE'],
    [new TransientError('x'), 'retry', 'ERR_TRANSIENT'],
    [new ConfigError('x'), 'stop', 'ERR_CONFIG']
  ]
  for (const [err, disposition, code] of cases) {
    t.equal(err.disposition, disposition, `${err.name} ${disposition}`)
    t.equal(err.code, code)
    t.same(err.toJSON(), { name: err.name, code, disposition, message: 'x' })
  }
  const hex = t.throws(() => fromHex('abc', 'the nonce')) as unknown
  t.ok(hex instanceof DecodeError, 'bad hex is a DecodeError, not a TypeError')
  t.match((hex as DecodeError).message, /the nonce is not valid hex/)
  const enc = t.throws(() => encode(1.5)) as unknown
  t.ok(
    enc instanceof InvalidInputError && (enc as InvalidInputError).disposition === 'reject',
    'a float refused by the canonical encoder: reject'
  )
  const big = t.throws(() => new Writer().tpm2b(new Uint8Array(0x10000))) as unknown
  t.ok(big instanceof TooLargeError, 'an oversized TPM2B: TooLargeError, not RangeError')
})

t.test('PolicyViolationsError lists every violation; a failed quote is one', async t => {
  const err = new PolicyViolationsError(['PCR 0 differs', 'nonce is stale'])
  t.ok(err instanceof QuorateError && err instanceof InvalidInputError)
  t.equal(err.disposition, 'reject')
  t.equal(err.code, 'ERR_POLICY')
  t.equal(err.message, '2 policy check(s) failed: PCR 0 differs; nonce is stale')
  t.same(err.toJSON().violations, ['PCR 0 differs', 'nonce is stale'])
  const q = new QuoteError([
    { kind: 'nonce', message: 'wrong nonce' },
    { kind: 'pcrs', message: 'PCR 7 not covered' }
  ])
  t.ok(q instanceof PolicyViolationsError, 'QuoteError reports every quote problem at once')
  t.equal(q.code, 'ERR_QUOTE')
  t.same(q.violations, ['wrong nonce', 'PCR 7 not covered'])
  t.equal(q.disposition, 'reject')
})
