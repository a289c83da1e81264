// genesis.json in CometBFT's layout (chain_id, genesis_time, initial_height, validators with
// tendermint/PubKeyEd25519 keys), our app state under app_state: { verifiers: [peer ids],
// committee_size, certification: { rules, adversary_fraction: "1/5", security_bits,
// round_deadline_blocks, cooldown_base_blocks, cooldown_max_blocks, cert_ttl_ms } }.
import { fromBase64, toBase64, toHex } from '../encoding/bytes.ts'
import { ConfigError, InvalidInputError } from '../encoding/errors.ts'
import { peerIdToPublicKey } from './keys.ts'
import { validatorAddress } from './producer.ts'
import {
  CHAIN_ID_RE,
  DEFAULT_CERTIFICATION,
  DEFAULT_COMMITTEE_SIZE,
  type CertificationParams,
  type Genesis
} from './types.ts'

/** Fewest genesis verifiers a chain starts with: 3f + 1 with f ≥ 1 (one liar tolerated). */
export const MIN_GENESIS_VERIFIERS = 4

const int = (v: unknown, lo: number, hi: number): boolean =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi

/**
 * The genesis certification parameters with defaults filled in, checked. Throws InvalidInputError
 * naming every field that is wrong. F must be in (0, 1/3): at F ≥ 1/3 colluders can block every
 * honest round, and no committee size reaches a security level.
 */
export function resolveCertification(g: Pick<Genesis, 'certification'>): CertificationParams {
  const c = g.certification ?? {}
  const p: CertificationParams = {
    rules: c.rules ?? DEFAULT_CERTIFICATION.rules,
    adversaryFraction: { ...(c.adversaryFraction ?? DEFAULT_CERTIFICATION.adversaryFraction) },
    securityBits: c.securityBits ?? DEFAULT_CERTIFICATION.securityBits,
    roundDeadlineBlocks: c.roundDeadlineBlocks ?? DEFAULT_CERTIFICATION.roundDeadlineBlocks,
    cooldownBaseBlocks: c.cooldownBaseBlocks ?? DEFAULT_CERTIFICATION.cooldownBaseBlocks,
    cooldownMaxBlocks: c.cooldownMaxBlocks ?? DEFAULT_CERTIFICATION.cooldownMaxBlocks,
    certTtlMs: c.certTtlMs ?? DEFAULT_CERTIFICATION.certTtlMs,
    faultWindowBlocks: c.faultWindowBlocks ?? DEFAULT_CERTIFICATION.faultWindowBlocks,
    silenceWindowRounds: c.silenceWindowRounds ?? DEFAULT_CERTIFICATION.silenceWindowRounds
  }
  const bad: string[] = []
  if (p.rules !== 'current' && p.rules !== 'legacy') bad.push('rules must be "current" or "legacy"')
  const { num, den } = p.adversaryFraction
  if (!int(num, 1, 1_000_000) || !int(den, 2, 1_000_000) || 3 * num >= den)
    bad.push('adversaryFraction must be num/den with integers 0 < num/den < 1/3')
  if (!int(p.securityBits, 1, 128)) bad.push('securityBits must be an integer 1–128')
  if (!int(p.roundDeadlineBlocks, 2, 1_000_000))
    bad.push('roundDeadlineBlocks must be an integer 2–1,000,000 (the seed takes one block)')
  if (!int(p.cooldownBaseBlocks, 1, 1_000_000)) bad.push('cooldownBaseBlocks must be an integer 1–1,000,000')
  if (!int(p.cooldownMaxBlocks, 1, 100_000_000) || p.cooldownMaxBlocks < p.cooldownBaseBlocks)
    bad.push('cooldownMaxBlocks must be an integer ≥ cooldownBaseBlocks and ≤ 100,000,000')
  if (!int(p.certTtlMs, 1_000, 366 * 24 * 3600_000))
    bad.push('certTtlMs must be an integer from 1 s to 366 days, in ms')
  if (!int(p.faultWindowBlocks, 1, 100_000_000)) bad.push('faultWindowBlocks must be an integer 1–100,000,000')
  if (!int(p.silenceWindowRounds, 4, 100_000)) bad.push('silenceWindowRounds must be an integer 4–100,000')
  if (bad.length > 0) throw new InvalidInputError(`genesis certification: ${bad.join('; ')}`)
  return p
}

/**
 * Refuses a chain that starts with fewer than MIN_GENESIS_VERIFIERS genesis verifiers: its first
 * committees could not tolerate one liar. `insecureBootstrap` allows it (tests, a first machine
 * that certifies the others), and says so.
 */
export function checkGenesisVerifiers(verifiers: readonly string[], opts: { insecureBootstrap?: boolean } = {}): void {
  const n = new Set(verifiers).size
  if (n >= MIN_GENESIS_VERIFIERS || opts.insecureBootstrap === true) return
  throw new InvalidInputError(
    `a chain needs at least ${MIN_GENESIS_VERIFIERS} genesis verifiers (3f + 1 with f ≥ 1) so that its first committees tolerate one liar; got ${n}. Name more with --verifier, or pass --insecure-bootstrap to start with fewer anyway`
  )
}

export function genesisToJson(g: Genesis): Record<string, unknown> {
  return {
    genesis_time: new Date(g.genesisTime).toISOString(),
    chain_id: g.chainId,
    initial_height: String(g.initialHeight),
    validators: g.validators.map((pk, i) => ({
      address: toHex(validatorAddress(pk)).toUpperCase(),
      pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(pk) },
      power: '10',
      name: i === 0 ? 'embedded' : `validator-${i}`
    })),
    app_hash: '',
    app_state: {
      verifiers: g.verifiers,
      committee_size: g.committeeSize ?? DEFAULT_COMMITTEE_SIZE,
      certification: certificationToJson(resolveCertification(g))
    }
  }
}

function certificationToJson(c: CertificationParams): Record<string, unknown> {
  return {
    rules: c.rules,
    adversary_fraction: `${c.adversaryFraction.num}/${c.adversaryFraction.den}`,
    security_bits: c.securityBits,
    round_deadline_blocks: c.roundDeadlineBlocks,
    cooldown_base_blocks: c.cooldownBaseBlocks,
    cooldown_max_blocks: c.cooldownMaxBlocks,
    cert_ttl_ms: c.certTtlMs,
    fault_window_blocks: c.faultWindowBlocks,
    silence_window_rounds: c.silenceWindowRounds
  }
}

const CERT_FIELDS: Record<string, keyof CertificationParams> = {
  rules: 'rules',
  adversary_fraction: 'adversaryFraction',
  security_bits: 'securityBits',
  round_deadline_blocks: 'roundDeadlineBlocks',
  cooldown_base_blocks: 'cooldownBaseBlocks',
  cooldown_max_blocks: 'cooldownMaxBlocks',
  cert_ttl_ms: 'certTtlMs',
  fault_window_blocks: 'faultWindowBlocks',
  silence_window_rounds: 'silenceWindowRounds'
}

function certificationFromJson(v: unknown, bad: (m: string) => never): Partial<CertificationParams> {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('app_state.certification must be an object')
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) {
    const f = Object.hasOwn(CERT_FIELDS, k) ? CERT_FIELDS[k] : undefined
    if (f === undefined) bad(`app_state.certification: unknown field ${JSON.stringify(k)}`)
    else if (f === 'adversaryFraction') {
      const m = typeof x === 'string' ? /^([0-9]{1,7})\/([0-9]{1,7})$/.exec(x) : null
      if (m === null) bad('app_state.certification.adversary_fraction must be "num/den", e.g. "1/5"')
      else out[f] = { num: Number(m[1]), den: Number(m[2]) }
    } else out[f] = x
  }
  const c = out as Partial<CertificationParams>
  try {
    resolveCertification({ certification: c })
  } catch (err) {
    bad(`app_state.${(err as Error).message.replace(/^genesis /, '')}`)
  }
  return c
}

export function genesisFromJson(j: unknown, where = 'genesis.json'): Genesis {
  const bad = (m: string): never => {
    throw new ConfigError(`${where}: ${m}`)
  }
  if (j === null || typeof j !== 'object') return bad('not a JSON object')
  const o = j as Record<string, unknown>
  if (typeof o.chain_id !== 'string' || !CHAIN_ID_RE.test(o.chain_id)) bad('chain_id missing or invalid')
  const t = typeof o.genesis_time === 'string' ? Date.parse(o.genesis_time) : NaN
  if (!Number.isFinite(t)) bad('genesis_time is not an RFC 3339 time')
  const ih = Number(o.initial_height ?? '1')
  if (!Number.isSafeInteger(ih) || ih < 1) bad('initial_height must be ≥ 1')
  if (!Array.isArray(o.validators) || o.validators.length === 0) bad('needs at least one validator')
  const validators = (o.validators as Array<{ pub_key?: { type?: string; value?: string } }>).map((v, i) => {
    if (v.pub_key?.type !== 'tendermint/PubKeyEd25519' || typeof v.pub_key.value !== 'string')
      return bad(`validators[${i}].pub_key must be a tendermint/PubKeyEd25519 key`)
    const k = fromBase64(v.pub_key.value, `validators[${i}].pub_key.value`)
    if (k.byteLength !== 32) bad(`validators[${i}].pub_key is not 32 bytes`)
    return k
  })
  const app = (o.app_state ?? {}) as { verifiers?: unknown; committee_size?: unknown; certification?: unknown }
  const k = app.committee_size ?? DEFAULT_COMMITTEE_SIZE
  if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1 || k > 100)
    bad('app_state.committee_size must be an integer 1–100')
  const verifiers = app.verifiers ?? []
  if (!Array.isArray(verifiers) || !verifiers.every(v => typeof v === 'string'))
    bad('app_state.verifiers must be a list of peer ids')
  for (const v of verifiers as string[]) {
    try {
      peerIdToPublicKey(v)
    } catch (err) {
      bad(`app_state.verifiers: ${(err as Error).message}`)
    }
  }
  const certification = certificationFromJson(app.certification, bad)
  return {
    chainId: o.chain_id as string,
    genesisTime: t,
    initialHeight: ih,
    validators,
    verifiers: [...(verifiers as string[])].sort(),
    committeeSize: k as number,
    certification
  }
}
