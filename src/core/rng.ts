/**
 * llama2.c's random number generator (xorshift64*, `random_u32` / `random_f32` in run.c), so a
 * seed gives the same samples here as there. The 64-bit state lives in two uint32 halves: no
 * BigInt, nothing allocated per call.
 */
export interface Rng {
  nextU32(): number
  /** Uniform in [0, 1), 24 random bits, exactly as run.c's random_f32. */
  nextF32(): number
}

// high 32 bits of the 64-bit product of two uint32 values
function mulHigh32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16
  const lo = a0 * b0
  const mid1 = a1 * b0
  const mid2 = a0 * b1
  const carry = ((lo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0
}

const MUL_HI = 0x2545f491
const MUL_LO = 0x4f6cdd1d

/** `seed` is an unsigned 64-bit integer given as a number (exact up to 2^53) or a bigint. */
export function createRng(seed: number | bigint): Rng {
  const s = BigInt.asUintN(64, BigInt(seed))
  let hi = Number(s >> 32n) >>> 0
  let lo = Number(s & 0xffffffffn) >>> 0
  return {
    nextU32() {
      // state ^= state >> 12
      lo = (lo ^ ((lo >>> 12) | (hi << 20))) >>> 0
      hi = (hi ^ (hi >>> 12)) >>> 0
      // state ^= state << 25
      hi = (hi ^ ((hi << 25) | (lo >>> 7))) >>> 0
      lo = (lo ^ (lo << 25)) >>> 0
      // state ^= state >> 27
      lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0
      hi = (hi ^ (hi >>> 27)) >>> 0
      // (state * 0x2545F4914F6CDD1D) >> 32, keeping the low 64 bits of the product
      return (mulHigh32(lo, MUL_LO) + Math.imul(hi, MUL_LO) + Math.imul(lo, MUL_HI)) >>> 0
    },
    nextF32() {
      return (this.nextU32() >>> 8) / 16777216
    },
  }
}
