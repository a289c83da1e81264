// A bounds-checked cursor over untrusted bytes. Every read checks the remaining length first and
// fails with a DecodeError naming the structure and the byte offset, so a truncated or corrupted
// input can never read out of range, allocate from an unchecked length, or loop forever.
import { DecodeError, TooLargeError } from '../encoding/errors.ts'
import { GrowableBytes } from '../encoding/bytes.ts'

/** A DecodeError that knows where in the input the problem is. */
export class StructureError extends DecodeError {
  override readonly code: string = 'ERR_DECODE'
  readonly offset: number
  readonly structure: string
  constructor(structure: string, offset: number, problem: string) {
    super(`${structure}: ${problem} at offset ${offset}`)
    this.offset = offset
    this.structure = structure
  }
}

export class Reader {
  readonly buf: Uint8Array
  readonly view: DataView
  pos: number
  /** Name of the structure being read, for error messages. */
  what: string

  constructor(buf: Uint8Array, what: string, pos = 0) {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.pos = pos
    this.what = what
  }

  get remaining(): number {
    return this.buf.length - this.pos
  }

  fail(problem: string, at = this.pos): never {
    throw new StructureError(this.what, at, problem)
  }

  need(n: number, field: string): void {
    if (n > this.buf.length - this.pos)
      this.fail(`${field} truncated (need ${n} bytes, ${this.buf.length - this.pos} left)`)
  }

  // Big-endian (TPM 2.0 Part 1 §18: the TPM marshals integers in network order).
  u8(field = 'byte'): number {
    this.need(1, field)
    return this.buf[this.pos++]
  }
  u16(field = 'UINT16'): number {
    this.need(2, field)
    const v = this.view.getUint16(this.pos)
    this.pos += 2
    return v
  }
  u32(field = 'UINT32'): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos)
    this.pos += 4
    return v
  }
  u64(field = 'UINT64'): bigint {
    this.need(8, field)
    const v = this.view.getBigUint64(this.pos)
    this.pos += 8
    return v
  }

  // Little-endian (TCG PC Client PFP §10: the firmware event log is in the platform's byte order).
  u16le(field = 'UINT16'): number {
    this.need(2, field)
    const v = this.view.getUint16(this.pos, true)
    this.pos += 2
    return v
  }
  u32le(field = 'UINT32'): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }
  u64le(field = 'UINT64'): bigint {
    this.need(8, field)
    const v = this.view.getBigUint64(this.pos, true)
    this.pos += 8
    return v
  }

  /** A copy of the next n bytes. */
  bytes(n: number, field = 'bytes'): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0) this.fail(`${field} has an invalid length ${n}`)
    this.need(n, field)
    const out = this.buf.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  /** A TPM2B: UINT16 size then that many bytes (Part 2 §10.4), with an optional maximum size. */
  tpm2b(field: string, max = 0xffff): Uint8Array {
    const at = this.pos
    const n = this.u16(`${field}.size`)
    if (n > max) this.fail(`${field}.size ${n} exceeds the maximum of ${max}`, at)
    return this.bytes(n, field)
  }

  /** Fails unless every byte was consumed. */
  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing bytes`)
  }
}

/** Growable big-endian writer for marshaling TPM structures. */
export class Writer extends GrowableBytes {
  constructor() {
    super(128)
  }

  u8(v: number): this {
    this.ensure(1)
    this.buf[this.len++] = v & 0xff
    return this
  }
  u16(v: number): this {
    this.ensure(2)
    new DataView(this.buf.buffer).setUint16(this.len, v)
    this.len += 2
    return this
  }
  u32(v: number): this {
    this.ensure(4)
    new DataView(this.buf.buffer).setUint32(this.len, v >>> 0)
    this.len += 4
    return this
  }
  u64(v: bigint): this {
    this.ensure(8)
    new DataView(this.buf.buffer).setBigUint64(this.len, v)
    this.len += 8
    return this
  }
  bytes(b: Uint8Array): this {
    this.put(b)
    return this
  }
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new TooLargeError(`TPM2B of ${b.length} bytes does not fit a UINT16 size`)
    return this.u16(b.length).bytes(b)
  }
}
