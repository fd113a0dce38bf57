/**
 * Credentials that can hide in URLs and messages: `user:password@` in a URL, a SAS signature
 * (`sig=`), a bearer token. One place redacts them for log lines, error messages and anything
 * else shown to people.
 */

const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>\\]+@/gi
const SAS_SIGNATURE = /([?&]sig=)[^&\s"'#<>\\]+/gi
const BEARER = /\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi

/** The credentials a URL carries, by kind: what redactUrl and redactSecrets would hide. */
export function urlCredentials(url: string): ('a SAS signature' | 'a user:password')[] {
  const found: ('a SAS signature' | 'a user:password')[] = []
  if (new RegExp(SAS_SIGNATURE.source, 'i').test(url)) found.push('a SAS signature')
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url)) found.push('a user:password')
  return found
}

/** A URL as it may appear in a log line or message: no `user:password@`, no query (a SAS is a bearer secret). */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  const base = (q < 0 ? url : url.slice(0, q)).replace(USERINFO, '$1[redacted]@')
  return q < 0 ? base : `${base}?[sas redacted]`
}

/** Free text (a whole JSON log line, an error message) with every credential above replaced. */
export function redactSecrets(text: string): string {
  return text.replace(USERINFO, '$1[redacted]@').replace(SAS_SIGNATURE, '$1[redacted]').replace(BEARER, '$1[redacted]')
}
