import { decodeStdOrUrlBase64 } from '../encoding/base64.js'
import { ConfigError } from './errors.js'

/**
 * Go decodes EncfsSideCarArgs as strict standard base64 (skipping CR/LF). The repo's own Python
 * tests produce URL-safe base64, so both alphabets are accepted, with or without padding.
 */
export function decodeSidecarArgs(b64: string, source: string): unknown {
  const text = b64.replace(/[\r\n]/g, '').trim()
  if (text.length === 0) throw new ConfigError('CONFIG_BASE64', `${source} is empty: it must be the standard base64 of the JSON configuration`)
  const bytes = decodeStdOrUrlBase64(text)
  if (!bytes) throw new ConfigError('CONFIG_BASE64', `${source} is not base64: it must be the standard base64 of the JSON configuration (for example: base64 -w0 config.json)`)
  const json = bytes.toString('utf8')
  try {
    return JSON.parse(json) as unknown
  } catch (err) {
    // V8 quotes the text around the error ('Unexpected token …, "…" is not valid JSON'), which
    // may be a key, a token or a SAS signature: keep only what does not quote the input.
    const detail = (err as Error).message.replace(/,\s*(\.\.\.)?"[\s\S]*"(\.\.\.)?\s+is not valid JSON$/, '')
    throw new ConfigError('CONFIG_JSON', `${source} decodes from base64 but is not valid JSON: ${detail}`)
  }
}
