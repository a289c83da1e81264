// isCidString (used by image.publish) accepts exactly what CID.parse accepts: the body check must
// not change when the implementation does (that would change which txs apply, hence app hashes).
import t from 'tap'
import { CID } from 'multiformats/cid'
import { isCidString } from '../../chain/bodies.ts'

const seeds = [
  'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
  'QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n',
  'zdj7WhuEjrB52m1BisYCtmjH1hSKa7yZ3jEZ9JcXaFRD51wVz',
  'k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8',
  'bagaaierasords4njcts6vs7qvdjfcvgnume4hqohf65zsfguprqphs3icwea'
]
const ref = (s: string): boolean => {
  try {
    CID.parse(s)
    return true
  } catch {
    return false
  }
}

t.test('known CIDs and non-CIDs', async t => {
  for (const s of seeds) t.equal(isCidString(s), true, s)
  for (const s of [
    '',
    'Q',
    'b',
    'zQmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n',
    'fabcdef',
    'bafy',
    'mAXASI',
    'Qm' + 'x'.repeat(44)
  ])
    t.equal(isCidString(s), ref(s), JSON.stringify(s))
  t.equal(
    isCidString('zQmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n'),
    false,
    'v0 with a multibase prefix is refused'
  )
})

t.test('mutated CIDs: same verdict as CID.parse', async t => {
  let seed = 7
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  let diff = 0
  let accepted = 0
  let n = 0
  for (const s0 of seeds) {
    for (let i = 0; i < 1500; i++) {
      let s = s0
      const k = rnd(5)
      if (k === 0) {
        const j = rnd(s.length)
        s = s.slice(0, j) + alpha[rnd(alpha.length)] + s.slice(j)
      } else if (k === 1) {
        const j = rnd(s.length)
        s = s.slice(0, j) + alpha[rnd(alpha.length)] + s.slice(j + 1)
      } else if (k === 2) s = alpha[rnd(alpha.length)] + s.slice(1)
      else if (k === 3) s = s.slice(0, rnd(s.length + 1))
      else s = s.slice(0, 1) + s.slice(1).split('').reverse().join('')
      n++
      const a = ref(s)
      if (a) accepted++
      if (a !== isCidString(s)) diff++
    }
  }
  t.equal(diff, 0, `${n} mutated strings, ${accepted} of them valid CIDs`)
  t.ok(accepted > 0 && accepted < n)
})
