import { ERROR_CODES, type ErrorCode } from './codes.js'

const STATUS: Record<string, string> = {
  403: '403 refused',
  500: '500',
  502: '502 bad answer',
  503: '503 unavailable',
  504: '504 timeout',
  upstream: "the service's answer: 403, or 502/503/504",
}

/** docs/errors.md: the registry as a table (written by `npm run docs:errors`, checked by a test). */
export function errorsMarkdown(): string {
  const rows = (Object.keys(ERROR_CODES) as ErrorCode[]).map((code) => {
    const c = ERROR_CODES[code]
    return `| \`${code}\` | ${c.meaning} | ${c.exit} | ${STATUS[String(c.http)]} |`
  })
  return `# Error codes

<!-- Generated from src/errors/codes.ts by \`npm run docs:errors\`; edit the registry, not this file. -->

Every error encfs raises on purpose ends its message with one of these codes in brackets
(\`remotefs: ... [LUKS_WRONG_KEY]\`), and the same code is in the JSON log line. The CLIs exit
with the status given here; the attestation and key release API answers the HTTP status given
here (docs/api-errors.md explains the statuses; "the service's answer" means 403 when MAA or the
vault refused, 504 when it answered 408, 503 for 429, 502 for 5xx). README's troubleshooting
table says what to do about the common ones.

| code | meaning | exit | API status |
|---|---|---|---|
${rows.join('\n')}
`
}
