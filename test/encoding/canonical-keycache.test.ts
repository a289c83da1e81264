// The key-order cache of encode is keyed by the key names joined with NUL: a map whose key
// contains NUL must never be encoded with the order cached for a different key list.
import t from 'tap'
import { decode, encode } from '../../encoding/canonical.ts'

t.test('a key containing NUL does not take the cached order of the keys it joins to', async t => {
  encode({ a: 1, b: 2 }) // caches the order of ["a", "b"] under "a\0b"
  const one = { 'a\u0000b': 3 }
  t.same(decode(encode(one)), one, 'single key "a\\0b" survives the round trip')
  encode({ x: 1, 'y\u0000z': 2 })
  const other = { 'x\u0000y': 1, z: 2 }
  t.same(decode(encode(other)), other, 'two lists with the same join stay apart')
  t.same(decode(encode({ a: 1, b: 2 })), { a: 1, b: 2 }, 'the cached list still encodes as before')
})
