/**
 * JSON.parse whose failure is the caller's own error: every document encfs reads (configuration,
 * LUKS2 metadata, THIM certificates, keyprovider requests) names what it was and what to do.
 * `fail` gets the parser's error, whose message may quote the text: callers that read secrets
 * keep only what they need of it.
 */
export function parseJson(text: string, fail: (err: Error) => Error): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw fail(err as Error)
  }
}
