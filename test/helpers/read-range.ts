// Reads ranges of a blob with one of the two clients in a process of its own, as remotefs would
// with NODE_EXTRA_CA_CERTS in its environment (Node reads that variable only at start-up).
//   node read-range.js <url> <native|node> <offset:length>...   env READ_TOKEN: a bearer token
// Prints one JSON line: { sha256 of the ranges in order, tokens asked for } or { error, code, status }.
import { createHash } from 'node:crypto'
import type { AccessToken, TokenCredential } from '@azure/identity'
import { rangeReader, type BlobHttpClient } from '../../src/storage/blob-http.js'

const [url, client, ...ranges] = process.argv.slice(2)
let asked = 0
const credential: TokenCredential | undefined = process.env.READ_TOKEN
  ? {
      getToken: async (): Promise<AccessToken> => {
        asked++
        return { token: process.env.READ_TOKEN!, expiresOnTimestamp: Date.now() + 3600_000 }
      },
    }
  : undefined
const reader = await rangeReader(url!, { credential, maxTries: 1 }, client as BlobHttpClient)
const hash = createHash('sha256')
try {
  for (const r of ranges) {
    const [offset, length] = r.split(':').map(Number) as [number, number]
    const buf = Buffer.alloc(length)
    await reader.readInto(offset, buf)
    hash.update(buf)
  }
  process.stdout.write(`${JSON.stringify({ sha256: hash.digest('hex'), tokens: asked })}\n`)
} catch (err) {
  const e = err as Error & { code?: string; statusCode?: number }
  process.stdout.write(`${JSON.stringify({ error: e.message, code: e.code, status: e.statusCode })}\n`)
}
process.exit(0)
