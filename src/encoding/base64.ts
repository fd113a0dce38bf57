/**
 * Go's base64.StdEncoding, which the sidecar's wire formats use: standard alphabet, padding
 * required, CR and LF skipped. Node's own decoder accepts anything, so check first.
 * Returns undefined when the text is not that.
 */
export function decodeStdBase64(text: string): Buffer | undefined {
  const clean = text.replace(/[\r\n]/g, '')
  if (clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) return undefined
  return Buffer.from(clean, 'base64')
}
