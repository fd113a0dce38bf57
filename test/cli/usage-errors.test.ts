// Every command line a CLI cannot run is one clear line with a code and exit status 2, never
// "unexpected error" and a stack trace.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { ENCFS_JS, REMOTEFS_JS } from '../helpers/remotefs.js'

const exec = promisify(execFile)

async function run(js: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [js, ...args], { timeout: 30_000, env: { ...process.env, EncfsSideCarArgs: '' } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

const CASES: [string, string, string[], RegExp][] = [
  ['encfs', ENCFS_JS, ['inspect', 'x.img', '--bogus-flag'], /Unknown arguments?: bogus-flag/],
  ['encfs', ENCFS_JS, ['inspect'], /Not enough non-option arguments/],
  ['encfs', ENCFS_JS, [], /name a command/],
  ['encfs', ENCFS_JS, ['no-such-command'], /Unknown argument: no-such-command/],
  ['encfs', ENCFS_JS, ['pack', '--from', '/tmp'], /Missing required arguments?: out, key-file/],
  ['encfs', ENCFS_JS, ['pack', '--from', '/tmp', '--out', 'o', '--key-file', 'k', '--sector-size', '3'], /Invalid values:.*sector-size/s],
  ['encfs', ENCFS_JS, ['check-key', 'x.img', '--key-hex', '00', '--kdf-max-pbkdf2-iterations', '-5'], /--kdf-max-pbkdf2-iterations must be a whole number/],
  ['encfs', ENCFS_JS, ['--loglevel', 'loud', 'inspect', 'x.img'], /Invalid values:.*loglevel/s],
  ['remotefs', REMOTEFS_JS, ['--bogus-flag'], /Unknown arguments?: bogus-flag/],
  ['remotefs', REMOTEFS_JS, ['-loglevel', 'loud'], /Invalid values:.*loglevel/s],
  ['remotefs', REMOTEFS_JS, ['--unlock', 'magic'], /Invalid values:.*unlock/s],
  ['remotefs', REMOTEFS_JS, ['--kdf-max-pbkdf2-iterations', 'lots'], /--kdf-max-pbkdf2-iterations must be a whole number/],
]

for (const [prog, js, args, expected] of CASES) {
  test(`${prog} ${args.join(' ') || '(no arguments)'}: one line, a code, exit 2`, async (t) => {
    const r = await run(js, args)
    t.is(r.code, 2, r.stderr)
    t.notRegex(r.stderr, /unexpected error/)
    t.notRegex(r.stderr, /^\s+at /m, 'no stack trace')
    const lines = r.stderr.trim().split('\n')
    t.is(lines.length, 1, r.stderr)
    t.regex(lines[0]!, new RegExp(`^${prog}: `))
    t.regex(lines[0]!, /\[CLI_USAGE\]$/)
    t.regex(lines[0]!, expected)
  })
}
