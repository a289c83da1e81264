import t from 'tap'
import { mkdtemp, rm, chmod, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  generateChainKey,
  loadChainKey,
  saveChainKey,
  peerIdToPublicKey,
  publicKeyToPeerId,
  verifyEd25519,
  chainKeyFromProtobuf
} from '../../chain/keys.ts'

t.test('key files: libp2p protobuf, 0600, peer id = account', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'quorate-keys-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const k = await generateChainKey()
  const path = join(dir, 'keys', 'a.key')
  await saveChainKey(path, k)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  await t.rejects(saveChainKey(path, await generateChainKey()), /refusing to overwrite/)
  const back = await loadChainKey(path)
  t.equal(back.peerId, k.peerId)
  t.equal(
    peerIdFromPrivateKey(privateKeyFromProtobuf(k.protobuf)).toString(),
    k.peerId,
    'libp2p reads the same identity'
  )
  t.same(peerIdToPublicKey(k.peerId), k.publicKey)
  t.equal(publicKeyToPeerId(k.publicKey), k.peerId)
  const msg = new Uint8Array([1, 2, 3])
  t.ok(verifyEd25519(k.publicKey, msg, k.sign(msg)))
  t.notOk(verifyEd25519(k.publicKey, new Uint8Array([1, 2, 4]), k.sign(msg)))
  await chmod(path, 0o644)
  await t.rejects(loadChainKey(path), /chmod 600/, 'refuses a key readable by others')
  await t.rejects(loadChainKey(join(dir, 'none.key')), /quorate keys new/)
  t.throws(() => peerIdToPublicKey('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), /not an Ed25519 peer id/)
  t.throws(() => peerIdToPublicKey('not-a-peer-id'), /not a libp2p peer id/)
  t.throws(() => chainKeyFromProtobuf(new Uint8Array([1, 2, 3])), /protobuf/)
})
