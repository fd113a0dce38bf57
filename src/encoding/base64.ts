// Node's own base64 decoder accepts anything (it skips what it does not know), so every base64
// encfs reads is checked first by one of these, each named for exactly what it accepts.

const STD = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Strict standard base64: the standard alphabet, padding required, nothing else (LUKS2 metadata,
 * as cryptsetup writes it). Returns undefined when the text is not that.
 */
export function decodeStdBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !STD.test(text)) return undefined
  return Buffer.from(text, 'base64')
}

/**
 * Go's base64.StdEncoding, which the Go sidecars' wire formats and their clients use: strict
 * standard base64 with CR and LF skipped (Go's decoder skips them).
 */
export function decodeGoStdBase64(text: string): Buffer | undefined {
  return decodeStdBase64(text.replace(/[\r\n]/g, ''))
}

/** For JSON schemas: the characters decodeGoStdBase64 accepts, in order (the length is checked when decoding). */
export const GO_STD_BASE64_PATTERN = '^[A-Za-z0-9+/\\r\\n]*={0,2}$'

/**
 * EncfsSideCarArgs as people produce it: standard or URL-safe alphabet (one of the two, not
 * mixed), padding optional, CR and LF skipped.
 */
export function decodeStdOrUrlBase64(text: string): Buffer | undefined {
  const clean = text.replace(/[\r\n]/g, '')
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(clean) || (/[+/]/.test(clean) && /[-_]/.test(clean)) || clean.replace(/=+$/, '').length % 4 === 1) return undefined
  return Buffer.from(clean.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
}
