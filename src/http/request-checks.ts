/**
 * What a request may carry, checked before anything is sent, by both blob clients (as undici
 * does for fetch): a header value holding CR or LF would add headers, or a whole second request,
 * to what goes on the wire, and parts of the headers come from places the host can influence (an
 * ETag from the blob service, a lease id from a file, a bearer token). And only http and https are
 * spoken: libcurl would otherwise read or write file://, ftp:// and more.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** What is wrong with the header line `Name: value`, or undefined. */
export function headerProblem(line: string): string | undefined {
  const colon = line.indexOf(':')
  if (colon <= 0) return `"${printable(line)}" is not "Name: value"`
  const name = line.slice(0, colon)
  if (!TOKEN.test(name)) return `the header name "${printable(name)}" is not a token`
  if (/[\r\n\0]/.test(line.slice(colon + 1))) return `the value of ${name} holds CR, LF or NUL`
  return undefined
}

/** What is wrong with a URL to be requested, or undefined. */
export function urlProblem(url: string): string | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') return `only http and https are requested, not ${scheme ? `${scheme}:` : 'a URL without a scheme'}`
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x20\x7f]/.test(url)) return 'a URL may not hold spaces or control characters'
  return undefined
}

/** Control characters shown escaped, so that a refused value cannot forge a log line either. */
function printable(s: string): string {
  return JSON.stringify(s).slice(1, -1)
}
