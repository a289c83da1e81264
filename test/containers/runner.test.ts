// Unit tests of the gate with fakes of its narrow interfaces (no Docker, no network): the order
// of the checks, step 5 (Docker reports another image ID), a failed measurement, cancellation.
import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import {
  createContainerRunner,
  type CertificationStatus,
  type DockerClient,
  type ImageRecord,
  type ImageSource
} from '../../containers/runner.ts'
import { memoryEventLog } from '../../containers/events.ts'
import { buildImageTar } from '../../containers/image-tar.ts'
import {
  DockerError,
  DockerImageMismatchError,
  MeasurementError,
  NotCertifiedError,
  ImageNotPublishedError,
  UnsupportedEngineError
} from '../../containers/errors.ts'

const img = buildImageTar({
  files: [{ path: 'hello', content: new TextEncoder().encode('hi') }],
  labels: { 'quorate.test': 'runner-unit' }
})
const CID = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

interface FakeDocker {
  loaded: Buffer[]
  created: number
  reportId: string
  has: Set<string>
}
const CLASSIC_STORE = {
  Driver: 'overlay2',
  DriverStatus: [
    ['Backing Filesystem', 'extfs'],
    ['Supports d_type', 'true']
  ]
}
function fakeDocker(
  reportId: string,
  info: () => Promise<unknown> = async () => CLASSIC_STORE
): { docker: DockerClient; state: FakeDocker } {
  const state: FakeDocker = { loaded: [], created: 0, reportId, has: new Set() }
  const docker = {
    loadImage: async (body: NodeJS.ReadableStream) => {
      const parts: Buffer[] = []
      for await (const c of body as AsyncIterable<Buffer>) parts.push(c)
      state.loaded.push(Buffer.concat(parts))
      state.has.add(state.reportId)
      return Readable.from([JSON.stringify({ stream: `Loaded image ID: ${state.reportId}\n` }) + '\n'])
    },
    getImage: (id: string) => ({
      inspect: async () => {
        if (!state.has.has(id)) throw new Error('no such image')
        return { Id: id }
      },
      remove: async () => {
        state.has.delete(id)
      }
    }),
    createContainer: async () => {
      state.created++
      throw new Error('not expected in these tests')
    },
    getContainer: () => {
      throw new Error('not expected')
    },
    listContainers: async () => [],
    info
  }
  // The fake implements only what the runner calls; the full dockerode types are much wider.
  return { docker: docker as unknown as DockerClient, state }
}

const source = (bytes: Uint8Array, chunk = 4096): ImageSource => ({
  fetch: async function* (_cid, opts) {
    for (let i = 0; i < bytes.length; i += chunk) {
      opts?.signal?.throwIfAborted()
      yield bytes.subarray(i, i + chunk)
    }
  }
})

function registry(
  calls: string[],
  cert: CertificationStatus,
  rec?: ImageRecord
): { getImage: (n: string) => Promise<ImageRecord | undefined>; isCertified: () => Promise<CertificationStatus> } {
  return {
    isCertified: async () => {
      calls.push('isCertified')
      return cert
    },
    getImage: async () => {
      calls.push('getImage')
      return rec
    }
  }
}

const rec: ImageRecord = { name: 'app', digest: img.imageId, cid: CID, size: img.tar.length, revoked: false }

t.test('certification is checked first, then the image record', async t => {
  const calls: string[] = []
  const { docker, state } = fakeDocker(img.imageId)
  const r = createContainerRunner({
    docker,
    registry: registry(calls, { certified: false, reason: 'revoked' }, rec),
    source: source(img.tar),
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), NotCertifiedError)
  t.same(calls, ['isCertified'], 'the chain is not even asked for the image')
  const calls2: string[] = []
  const r2 = createContainerRunner({
    docker,
    registry: registry(calls2, { certified: true }),
    source: source(img.tar),
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r2.launch({ image: 'app', port: 1234 }), ImageNotPublishedError)
  t.same(calls2, ['isCertified', 'getImage'])
  t.equal(state.loaded.length, 0)
})

t.test('step 5: Docker reports another image ID → refused, what it loaded is removed', async t => {
  const other = 'sha256:' + 'f'.repeat(64)
  const { docker, state } = fakeDocker(other)
  const log = memoryEventLog()
  const r = createContainerRunner({
    docker,
    registry: registry([], { certified: true }, rec),
    source: source(img.tar),
    measurer: {
      extend: async () => {
        t.fail('must not measure')
      }
    },
    eventLog: log,
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), DockerImageMismatchError)
  t.equal(state.loaded.length, 1, 'the archive was loaded (all checks before load passed)')
  t.ok(Buffer.from(img.tar).equals(state.loaded[0]), 'Docker received exactly the archive, tail included')
  t.notOk(state.has.has(other), 'the foreign image was removed')
  t.equal(log.lines.length, 0)
  t.equal(state.created, 0)
})

t.test('a failed measurement stops the launch before any container exists', async t => {
  const { docker, state } = fakeDocker(img.imageId)
  const r = createContainerRunner({
    docker,
    registry: registry([], { certified: true }, rec),
    source: source(img.tar),
    measurer: {
      extend: async () => {
        throw new Error('TPM busy')
      }
    },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), MeasurementError)
  t.equal(state.created, 0)
})

t.test('cancellation aborts the fetch and the upload', async t => {
  const { docker, state } = fakeDocker(img.imageId)
  let uploads = 0
  const d = docker as unknown as { loadImage: (b: PassThrough) => Promise<unknown> }
  const orig = d.loadImage
  d.loadImage = async b => {
    uploads++
    return await orig(b)
  }
  const big = buildImageTar({
    files: [{ path: 'pad', content: new Uint8Array(400_000) }],
    labels: { 'quorate.test': 'runner-unit' }
  })
  const bigRec = { ...rec, digest: big.imageId, size: big.tar.length }
  // the operator cancels once half the image has come in (an event, not a timer): the upload
  // to Docker has begun by then and the rest is never fetched
  const ac = new AbortController()
  let uploadsAtCancel = -1
  let fetchedAfterCancel = 0
  const cancelling: ImageSource = {
    fetch: async function* (_cid, opts) {
      for (let i = 0; i < big.tar.length; i += 4096) {
        if (ac.signal.aborted) fetchedAfterCancel++
        else if (i >= big.tar.length / 2) {
          uploadsAtCancel = uploads
          ac.abort(new Error('operator cancelled'))
        }
        opts?.signal?.throwIfAborted()
        yield big.tar.subarray(i, i + 4096)
      }
    }
  }
  const r = createContainerRunner({
    docker,
    registry: registry([], { certified: true }, bigRec),
    source: cancelling,
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234, signal: ac.signal }), /operator cancelled/)
  t.equal(uploadsAtCancel, 1, 'the upload had begun when the operator cancelled')
  t.equal(fetchedAfterCancel, 0, 'the fetch stopped at the cancel')
  t.equal(uploads, 1)
  t.equal(state.loaded.length, 0, 'the upload never completed')
})

t.test('Docker receives exactly the archive, whatever the chunking (held-back tail included)', async t => {
  for (const chunk of [1, 100, 1023, 1024, 1025, 3000, 1 << 20]) {
    const { docker, state } = fakeDocker(img.imageId)
    const r = createContainerRunner({
      docker,
      registry: registry([], { certified: true }, rec),
      source: source(img.tar, chunk),
      measurer: { extend: async () => {} },
      eventLog: memoryEventLog(),
      nodeId: 'n'
    })
    await t.rejects(
      r.launch({ image: 'app', port: 1234 }),
      /creating the container/,
      `chunk ${chunk}: gets as far as creating the container`
    )
    t.ok(Buffer.from(img.tar).equals(state.loaded[0] ?? Buffer.alloc(0)), `chunk ${chunk}: bytes identical`)
  }
})

t.test('Docker with the containerd image store: refused before anything is fetched, with what to change', async t => {
  let fetched = 0
  const counting: ImageSource = {
    fetch: async function* () {
      fetched++
      yield img.tar
    }
  }
  let asked = 0
  const { docker, state } = fakeDocker(img.imageId, async () => {
    asked++
    return { Driver: 'overlayfs', DriverStatus: [['driver-type', 'io.containerd.snapshotter.v1']] }
  })
  const r = createContainerRunner({
    docker,
    registry: registry([], { certified: true, expiresAt: Date.now() + 60_000 }, rec),
    source: counting,
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), {
    name: 'UnsupportedEngineError',
    message: /containerd image store.*containerd-snapshotter": false/
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), UnsupportedEngineError, 'again')
  t.equal(asked, 1, 'the engine is asked once')
  t.equal(fetched, 0, 'nothing fetched')
  t.equal(state.loaded.length, 0, 'nothing loaded')
})

t.test('Docker not answering the engine check: a DockerError (retry later), asked again next launch', async t => {
  let asked = 0
  const { docker } = fakeDocker(img.imageId, async () => {
    asked++
    throw new Error('connect ENOENT /var/run/docker.sock')
  })
  const r = createContainerRunner({
    docker,
    registry: registry([], { certified: true, expiresAt: Date.now() + 60_000 }, rec),
    source: source(img.tar),
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: 'n'
  })
  await t.rejects(r.launch({ image: 'app', port: 1234 }), DockerError)
  await t.rejects(r.launch({ image: 'app', port: 1234 }), DockerError)
  t.equal(asked, 2, 'not cached')
})
