// genesis.json in CometBFT's layout (chain_id, genesis_time, initial_height, validators with
// tendermint/PubKeyEd25519 keys), our app state under app_state: { verifiers: [peer ids] }.
import { fromBase64, toBase64, toHex } from '../encoding/bytes.ts'
import { ConfigError } from '../encoding/errors.ts'
import { peerIdToPublicKey } from './keys.ts'
import { validatorAddress } from './producer.ts'
import { CHAIN_ID_RE, DEFAULT_COMMITTEE_SIZE, type Genesis } from './types.ts'

export function genesisToJson (g: Genesis): Record<string, unknown> {
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
    app_state: { verifiers: g.verifiers, committee_size: g.committeeSize ?? DEFAULT_COMMITTEE_SIZE }
  }
}

export function genesisFromJson (j: unknown, where = 'genesis.json'): Genesis {
  const bad = (m: string): never => { throw new ConfigError(`${where}: ${m}`) }
  if (j === null || typeof j !== 'object') return bad('not a JSON object')
  const o = j as Record<string, unknown>
  if (typeof o.chain_id !== 'string' || !CHAIN_ID_RE.test(o.chain_id)) bad('chain_id missing or invalid')
  const t = typeof o.genesis_time === 'string' ? Date.parse(o.genesis_time) : NaN
  if (!Number.isFinite(t)) bad('genesis_time is not an RFC 3339 time')
  const ih = Number(o.initial_height ?? '1')
  if (!Number.isSafeInteger(ih) || ih < 1) bad('initial_height must be ≥ 1')
  if (!Array.isArray(o.validators) || o.validators.length === 0) bad('needs at least one validator')
  const validators = (o.validators as Array<{ pub_key?: { type?: string, value?: string } }>).map((v, i) => {
    if (v.pub_key?.type !== 'tendermint/PubKeyEd25519' || typeof v.pub_key.value !== 'string') return bad(`validators[${i}].pub_key must be a tendermint/PubKeyEd25519 key`)
    const k = fromBase64(v.pub_key.value, `validators[${i}].pub_key.value`)
    if (k.byteLength !== 32) bad(`validators[${i}].pub_key is not 32 bytes`)
    return k
  })
  const app = (o.app_state ?? {}) as { verifiers?: unknown, committee_size?: unknown }
  const k = app.committee_size ?? DEFAULT_COMMITTEE_SIZE
  if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1 || k > 100) bad('app_state.committee_size must be an integer 1–100')
  const verifiers = app.verifiers ?? []
  if (!Array.isArray(verifiers) || !verifiers.every(v => typeof v === 'string')) bad('app_state.verifiers must be a list of peer ids')
  for (const v of verifiers as string[]) {
    try { peerIdToPublicKey(v) } catch (err) { bad(`app_state.verifiers: ${(err as Error).message}`) }
  }
  return { chainId: o.chain_id as string, genesisTime: t, initialHeight: ih, validators, verifiers: [...(verifiers as string[])].sort(), committeeSize: k as number }
}
