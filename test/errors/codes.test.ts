// The error registry is the one list of codes: docs/errors.md is generated from it, README's
// troubleshooting table names only registered codes, and every registered code is raised somewhere.
import test from 'ava'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ERROR_CODES, isErrorCode } from '../../src/errors/codes.js'
import { errorsMarkdown } from '../../src/errors/reference.js'
import { EncfsError, withContext } from '../../src/errors/encfs-error.js'
import { exitStatus, UsageError } from '../../src/cli/fail.js'
import { LuksError } from '../../src/luks/errors.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const codes = Object.keys(ERROR_CODES)

test('docs/errors.md is the registry as it is now (run npm run docs:errors)', (t) => {
  t.is(readFileSync(path.join(root, 'docs', 'errors.md'), 'utf8'), errorsMarkdown())
})

test("README's troubleshooting table names registered codes only", (t) => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Troubleshooting'), readme.indexOf('\n## ', readme.indexOf('## Troubleshooting') + 1))
  const named = [...section.matchAll(/^\| ([^|]+)\|/gm)].flatMap((m) => [...m[1]!.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9*]+)+\b|\b[A-Z]+_\*(?:_[A-Z0-9]+)*\b/g)].map((c) => c[0]))
  t.true(named.length > 20, `${named.length} codes in the table`)
  for (const code of named) {
    const pattern = new RegExp(`^${code.replace(/\*/g, '[A-Z0-9_]+')}$`)
    t.true(
      codes.some((c) => pattern.test(c)),
      `${code} is not a registered code (src/errors/codes.ts)`,
    )
  }
})

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []))
}

test('every registered code is raised somewhere in src/', (t) => {
  const text = sources(path.join(root, 'src'))
    .filter((f) => !f.startsWith(path.join(root, 'src', 'errors')))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n')
  const unused = codes.filter((c) => !text.includes(`'${c}'`))
  t.deepEqual(unused, [], 'registered but never raised: remove them from src/errors/codes.ts')
})

test('each code has a one-line meaning, an exit status and an API status', (t) => {
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    t.regex(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/)
    t.true(info.meaning.length > 10 && !info.meaning.includes('\n'), code)
    t.true(info.exit === 1 || info.exit === 2, code)
    t.true([403, 500, 502, 503, 504, 'upstream'].includes(info.http), code)
  }
  t.true(isErrorCode('LUKS_WRONG_KEY'))
  t.false(isErrorCode('NO_SUCH_CODE'))
})

test('exit statuses come from the registry; usage errors exit 2, a bad log level 1 (as Go)', (t) => {
  t.is(exitStatus(new UsageError('bad flag')), 2)
  t.is(exitStatus(new EncfsError('LOG_LEVEL_INVALID', 'x')), 1)
  t.is(exitStatus(new LuksError('LUKS_WRONG_KEY', 'x')), 1)
  t.is(exitStatus(new TypeError('bug')), 1)
  t.is(UsageError.of(new EncfsError('LOG_FORMAT_INVALID', 'x')).code, 'LOG_FORMAT_INVALID')
  t.is(UsageError.of(new LuksError('LUKS_WRONG_KEY', 'x')).code, 'CLI_USAGE', 'only usage codes pass through')
})

test('withContext keeps the error, its class, code and cause, and names where it happened', (t) => {
  const cause = new Error('disk on fire')
  const err = new LuksError('LUKS_HEADER_CORRUPT', 'header damaged', { cause })
  const same = withContext(err, 'filesystem 1 (/mnt/x)')
  t.is(same, err)
  t.true(same instanceof LuksError)
  t.is(same.code, 'LUKS_HEADER_CORRUPT')
  t.is(same.cause, cause)
  t.is(same.message, 'filesystem 1 (/mnt/x): header damaged')
  t.deepEqual(same.context, ['filesystem 1 (/mnt/x)'])
  t.is(withContext('not an error', 'x'), 'not an error')
})
