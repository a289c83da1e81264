// Committee seed (CONTRACTS.md): sha256("quorate/committee/v1" ‖ hash of the first block after the
// request's block ‖ UTF-8 node id ‖ round as 8-byte big-endian unsigned integer).
import { sha256, utf8 } from '../encoding/bytes.ts'

const DOMAIN = utf8.encode('quorate/committee/v1')

export function committeeSeed(blockHash: Uint8Array, nodeId: string, round: number): Uint8Array {
  const r = new Uint8Array(8)
  new DataView(r.buffer).setBigUint64(0, BigInt(round))
  return sha256(DOMAIN, blockHash, utf8.encode(nodeId), r)
}
