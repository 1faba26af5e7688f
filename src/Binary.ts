/**
 * Binary values for stores that hold bytes (images) or vectors (embeddings).
 * Bytes are stored as they are (SQLite `BLOB`, PostgreSQL `bytea`); a vector
 * is stored as its float32 values in little-endian order, 4 bytes each.
 * Every conversion here returns a copy that owns its memory, so a caller
 * mutating its buffer never changes what a store holds, and drivers'
 * `Buffer`s (often views into a shared pool, at any `byteOffset`) never leak.
 */
import { Schema } from "effect"

/** A copy of `bytes` as a plain `Uint8Array` with its own `ArrayBuffer` (a `Buffer` becomes a `Uint8Array`). */
export const copyBytes = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes)

/** The little-endian float32 bytes of `vector`, 4 per value, in a new buffer. */
export const float32ToBytes = (vector: Float32Array): Uint8Array => {
  const bytes = new Uint8Array(vector.length * 4)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < vector.length; i++) view.setFloat32(i * 4, vector[i]!, true)
  return bytes
}

/**
 * The vector whose little-endian float32 bytes are `bytes`, in a new buffer.
 * Any `byteOffset` is accepted (drivers return pooled, unaligned `Buffer`s);
 * a length that is not a multiple of 4 is a corrupt value and throws a `RangeError`.
 */
export const bytesToFloat32 = (bytes: Uint8Array): Float32Array => {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(`a float32 vector needs a multiple of 4 bytes, got ${bytes.byteLength}`)
  }
  const vector = new Float32Array(bytes.byteLength / 4)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < vector.length; i++) vector[i] = view.getFloat32(i * 4, true)
  return vector
}

/** Binary content (`Uint8Array`, a `Buffer` included). */
export const Bytes = Schema.Uint8ArrayFromSelf.annotations({ identifier: "Bytes" })

const allFinite = (vector: Float32Array): boolean => {
  for (let i = 0; i < vector.length; i++) if (!Number.isFinite(vector[i])) return false
  return true
}

/** A vector of float32 values (`Float32Array`), every value finite. */
export const Vector: Schema.Schema<Float32Array> = Schema.declare(
  (input: unknown): input is Float32Array => input instanceof Float32Array,
  {
    identifier: "Float32Array",
    description: "a Float32Array",
    arbitrary: () => (fc) => fc.float32Array({ noDefaultInfinity: true, noNaN: true, maxLength: 64 }),
    pretty: () => (vector) => `Float32Array(${vector.length})`
  }
).pipe(Schema.filter((vector) => allFinite(vector) || "every value must be finite", { identifier: "Vector" }))
