// agent/connlimit.ts: which address group a client counts under, and the per-group admission
// (connections held, token-bucket rate) the listeners apply before any handshake. The clock is
// handed in, so the rate is checked without waiting.
import t from 'tap'
import { Admission, addressGroup } from '../../agent/connlimit.ts'

t.test('address groups: IPv4 per address, IPv6 per /64, IPv4-mapped as IPv4, ::1 alone', async t => {
  t.equal(addressGroup('203.0.113.7'), '203.0.113.7')
  t.not(addressGroup('203.0.113.7'), addressGroup('203.0.113.8'), 'IPv4 neighbours are separate clients')
  t.equal(addressGroup('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  t.equal(addressGroup('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'one /64: one group')
  t.equal(addressGroup('2001:0db8:0001:0002:0:0:0:9'), '2001:db8:1:2::/64', 'leading zeros do not make a new group')
  t.not(addressGroup('2001:db8:1:3::1'), addressGroup('2001:db8:1:2::1'), 'the next /64 is another client')
  t.equal(addressGroup('2001:db8::'), '2001:db8:0:0::/64', ':: at the end')
  t.equal(addressGroup('::ffff:198.51.100.9'), '198.51.100.9', 'IPv4-mapped (dual-stack listener) counts as IPv4')
  t.equal(addressGroup('::ffff:c633:6409'), '198.51.100.9', 'IPv4-mapped in hex too')
  t.equal(addressGroup('::1'), '::1', 'loopback is its own group')
  t.equal(addressGroup('0:0:0:0:0:0:0:1'), '::1')
  t.equal(addressGroup('::2'), '0:0:0:0::/64', 'other addresses in ::/64 are one group')
  t.equal(addressGroup('fe80::1%eth0'), 'fe80:0:0:0::/64%eth0', 'link-local: per /64 and per link')
  t.not(addressGroup('fe80::1%eth0'), addressGroup('fe80::1%eth1'))
  t.equal(addressGroup('64:ff9b::c000:201'), '64:ff9b:0:0::/64', 'an embedded IPv4 elsewhere is plain IPv6')
  t.equal(addressGroup(undefined), '', 'a socket already closed has no address')
  t.equal(addressGroup('not an address'), 'not an address', 'anything else stands for itself')
})

t.test('admission: a group holds at most perGroup connections; a release frees one', async t => {
  const a = new Admission({ perGroup: 2, ratePerSecond: 1000, burst: 1000, now: () => 0 })
  t.equal(a.take('g'), undefined)
  t.equal(a.take('g'), undefined)
  t.equal(a.take('g'), 'held', 'the third is refused')
  t.equal(a.take('h'), undefined, 'another group is not affected')
  a.release('g')
  t.equal(a.take('g'), undefined, 'a closed connection frees its slot')
})

t.test('admission: a burst, then one new connection per 1/rate seconds', async t => {
  let now = 10_000
  const a = new Admission({ perGroup: 100, ratePerSecond: 2, burst: 3, now: () => now })
  for (let i = 0; i < 3; i++) t.equal(a.take('g'), undefined, `burst ${i + 1}`)
  t.equal(a.take('g'), 'rate', 'the bucket is empty')
  t.equal(a.take('x'), undefined, 'another group has its own bucket')
  now += 400
  t.equal(a.take('g'), 'rate', '0.8 of a token is not one')
  now += 100
  t.equal(a.take('g'), undefined, 'one token after 0.5 s at 2/s')
  t.equal(a.take('g'), 'rate')
  now += 60_000
  for (let i = 0; i < 3; i++) t.equal(a.take('g'), undefined, `refilled to the burst only (${i + 1})`)
  t.equal(a.take('g'), 'rate', 'a long quiet spell does not save more than the burst')
})

t.test('admission: groups with nothing open and a full bucket are forgotten', async t => {
  let now = 0
  const a = new Admission({ perGroup: 10, ratePerSecond: 10, burst: 10, now: () => now })
  let admitted = 0
  for (let i = 0; i < 1000; i++) {
    const g = `2001:db8:${i.toString(16)}::/64`
    if (a.take(g) === undefined) admitted++
    a.release(g)
  }
  t.equal(admitted, 1000)
  t.equal(a.groups, 1000, 'tracked while their buckets refill')
  now += 2000
  a.take('late')
  t.equal(a.groups, 1, 'after a refill only the newcomer is left')
})
