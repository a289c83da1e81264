// decodePem, the one PEM parser (EK CAs in parseCertificates, ekCas in reference values, the
// vendor CLI's CA bundles): strict about block structure and base64, bounded, and every malformed
// input is a PemError/TooLargeError naming the block, never a crash or a silently skipped block.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodePem, parseCertificates, PemError, PEM_LIMITS } from '../../attestation/ekcert.ts'
import { referenceValuesFromJson } from '../../attestation/refs.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'
import { FIXTURES } from './scenario.ts'
import { throwsInstance, prng, randomBytesFrom, mutate } from './util.ts'

const rootPem = readFileSync(join(FIXTURES, 'ek', 'rootca.pem'), 'utf8')
const issuerPem = readFileSync(join(FIXTURES, 'ek', 'issuer.pem'), 'utf8')
const rootDer = new Uint8Array(parseCertificates(rootPem)[0].raw)
const issuerDer = new Uint8Array(parseCertificates(issuerPem)[0].raw)
const b64 = (d: Uint8Array): string => Buffer.from(d).toString('base64')
const block = (label: string, body: string): string => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`

t.test('well-formed PEM: bundles, explanatory text, CRLF, any line length', async t => {
  const bundle = `subject=CN = root\nissuer=CN = root\n${rootPem}\n# the issuing CA\n${issuerPem}`
  const blocks = decodePem(bundle, { label: 'CERTIFICATE' })
  t.equal(blocks.length, 2)
  t.same([...blocks[0].der], [...rootDer])
  t.same([...blocks[1].der], [...issuerDer])
  t.same([...decodePem(rootPem.replace(/\n/g, '\r\n'))[0].der], [...rootDer], 'CRLF')
  t.same([...decodePem(block('CERTIFICATE', b64(rootDer)))[0].der], [...rootDer], 'one long line')
  t.same(
    decodePem(block('X509 CRL', 'AAAA')).map(b => b.label),
    ['X509 CRL'],
    'labels with spaces, no label filter'
  )
  t.same(decodePem('no pem here at all'), [], 'no BEGIN: no blocks')
  t.equal(parseCertificates(Buffer.from(bundle)).length, 2, 'PEM bytes with leading text (a vendor CA bundle file)')
  t.equal(
    parseCertificates(rootDer)[0].fingerprint256,
    parseCertificates(rootPem)[0].fingerprint256,
    'DER and PEM agree'
  )
})

t.test('malformed PEM: a PemError naming the block and the problem', async t => {
  const body = b64(rootDer)
  const cases: Array<[string, string, RegExp]> = [
    ['no END', `-----BEGIN CERTIFICATE-----\n${body}\n`, /block #1 \(CERTIFICATE\) has no END line/],
    [
      'next BEGIN before END',
      `-----BEGIN CERTIFICATE-----\n${body}\n${rootPem}`,
      /block #1 \(CERTIFICATE\) has no END line/
    ],
    [
      'END of another label',
      `-----BEGIN CERTIFICATE-----\n${body}\n-----END PRIVATE KEY-----\n`,
      /BEGIN CERTIFICATE is closed by "-----END PRIVATE KEY-----"/
    ],
    ['stray END', `${rootPem}-----END CERTIFICATE-----\n`, /END line without its BEGIN after block #1/],
    [
      'bad character',
      block('CERTIFICATE', body.slice(0, 40) + '!' + body.slice(41)),
      /block #1 \(CERTIFICATE\): body is not base64 \(character "!"\)/
    ],
    ['bad length', block('CERTIFICATE', body.slice(0, -1)), /not a multiple of 4/],
    ['padding inside', block('CERTIFICATE', 'AA==' + body), /'=' padding before the end/],
    ['empty body', block('CERTIFICATE', ''), /block #1 \(CERTIFICATE\) is empty/],
    ['RFC 1421 header', block('CERTIFICATE', 'Proc-Type: 4,ENCRYPTED\n\n' + body), /not base64/],
    [
      'malformed BEGIN line',
      `-----BEGIN CERTIFICATE----\n${body}\n-----END CERTIFICATE-----\n`,
      /block #1: malformed BEGIN line/
    ],
    ['empty label', block('', body), /malformed BEGIN line/],
    ['wrong label', rootPem + block('PRIVATE KEY', 'AAAA'), /block #2 is a PRIVATE KEY, expected CERTIFICATE/]
  ]
  for (const [name, text, re] of cases)
    throwsInstance(
      t,
      () => decodePem(text, { label: 'CERTIFICATE', what: 'ca.pem' }),
      PemError,
      name,
      new RegExp('^ca\\.pem: .*' + re.source)
    )
  // the same through every user of the parser
  const bad = block('CERTIFICATE', body.slice(0, -1))
  throwsInstance(t, () => parseCertificates(bad, 'EK CA'), PemError, 'parseCertificates (text)', /^EK CA: block #1/)
  throwsInstance(
    t,
    () => parseCertificates(Buffer.from('# bundle\n' + rootPem + bad), 'ca.pem'),
    PemError,
    'parseCertificates (bytes): a bad second block is not skipped',
    /block #2/
  )
  throwsInstance(
    t,
    () => referenceValuesFromJson({ ekCas: [bad], firmware: [], os: [] }),
    DecodeError,
    'reference values',
    /ekCas\[0\]: block #1/
  )
  throwsInstance(
    t,
    () => parseCertificates(block('CERTIFICATE', 'AAAA')),
    DecodeError,
    'well-formed PEM of a non-certificate',
    /not a DER SEQUENCE/
  )
})

t.test('reference values hold the DER of each PEM certificate', async t => {
  const r = referenceValuesFromJson({ ekCas: [rootPem + issuerPem, b64(rootDer)], firmware: [], os: [] })
  t.same(
    r.ekCas.map(c => b64(c)),
    [b64(rootDer), b64(issuerDer), b64(rootDer)]
  )
})

t.test('limits', async t => {
  throwsInstance(t, () => decodePem(' '.repeat(PEM_LIMITS.chars + 1)), TooLargeError, 'text size')
  throwsInstance(t, () => decodePem(block('X', 'AAAA').repeat(PEM_LIMITS.blocks + 1)), TooLargeError, 'block count')
  t.equal(decodePem(block('X', 'AAAA').repeat(PEM_LIMITS.blocks)).length, PEM_LIMITS.blocks, 'at the limit')
})

t.test('fuzz: random and mutated PEM gives blocks or our errors, never anything else', async t => {
  const rnd = prng(7468)
  const seeds = [rootPem, rootPem + issuerPem, `text\n${rootPem}more text\n`, block('CERTIFICATE', 'AAAA')]
  const alphabet = [
    '-----BEGIN ',
    '-----END ',
    'CERTIFICATE',
    '-----',
    '\n',
    '\r\n',
    ' ',
    'AAAA',
    '=',
    'Zm9v',
    '!',
    'X509 CRL'
  ]
  let foreign = 0
  let ok = 0
  const check = (input: string | Uint8Array): void => {
    try {
      if (typeof input === 'string') {
        decodePem(input, { label: 'CERTIFICATE' })
        ok++
      } else parseCertificates(input)
    } catch (err) {
      if (!(err instanceof InvalidInputError)) {
        foreign++
        if (foreign < 4) t.fail(String(err))
      }
    }
  }
  for (let i = 0; i < 1500; i++) {
    const seed = seeds[i % seeds.length]
    check(Buffer.from(mutate(rnd, Buffer.from(seed, 'latin1'))).toString('latin1'))
    check(mutate(rnd, Buffer.from(seed, 'latin1')))
    let s = ''
    for (let j = Math.floor(rnd() * 12); j > 0; j--) s += alphabet[Math.floor(rnd() * alphabet.length)]
    check(s)
    check(Buffer.from(randomBytesFrom(rnd, 1 + Math.floor(rnd() * 64))).toString('latin1'))
  }
  t.equal(foreign, 0, 'only InvalidInputError subclasses')
  t.ok(ok > 0, `some inputs still decode (${ok})`)
})
