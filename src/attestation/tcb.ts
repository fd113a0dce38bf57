/** A TCB_VERSION as the Milan/Genoa firmware lays it out (docs/attestation.md#tcb-version). */
export interface TcbVersion {
  /** The Go code's "TCBM": the 8 bytes as a little-endian u64, in hex (16 digits). */
  hex: string
  value: bigint
  bootloader: number
  tee: number
  snp: number
  microcode: number
  /** Bytes 2..5, reserved on Milan and Genoa. */
  reserved: number[]
}

export function parseTcb(bytes: Buffer): TcbVersion {
  const value = bytes.readBigUInt64LE(0)
  return {
    hex: value.toString(16).padStart(16, '0'),
    value,
    bootloader: bytes[0]!,
    tee: bytes[1]!,
    reserved: [...bytes.subarray(2, 6)],
    snp: bytes[6]!,
    microcode: bytes[7]!,
  }
}
