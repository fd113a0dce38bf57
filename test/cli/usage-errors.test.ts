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

// [program, entry point, arguments, what the line says, its code (CLI_USAGE unless named)]
const CASES: [string, string, string[], RegExp, string?][] = [
  ['encfs', ENCFS_JS, ['inspect', 'x.img', '--bogus-flag'], /Unknown arguments?: bogus-flag/],
  ['encfs', ENCFS_JS, ['inspect'], /Not enough non-option arguments/],
  ['encfs', ENCFS_JS, [], /name a command/],
  ['encfs', ENCFS_JS, ['no-such-command'], /Unknown argument: no-such-command/],
  ['encfs', ENCFS_JS, ['pack', '--from', '/tmp'], /Missing required arguments?: out, key-file/],
  ['encfs', ENCFS_JS, ['pack', '--from', '/tmp', '--out', 'o', '--key-file', 'k', '--sector-size', '3'], /Invalid values:.*sector-size/s],
  ['encfs', ENCFS_JS, ['check-key', 'x.img', '--key-hex', '00', '--kdf-max-pbkdf2-iterations', '-5'], /--kdf-max-pbkdf2-iterations must be a whole number/],
  ['remotefs', REMOTEFS_JS, ['--bogus-flag'], /Unknown arguments?: bogus-flag/],
  ['remotefs', REMOTEFS_JS, ['--unlock', 'magic'], /Invalid values:.*unlock/s],
  ['remotefs', REMOTEFS_JS, ['--kdf-max-pbkdf2-iterations', 'lots'], /--kdf-max-pbkdf2-iterations must be a whole number/],
]

for (const [prog, js, args, expected, code = 'CLI_USAGE'] of CASES) {
  test(`${prog} ${args.join(' ') || '(no arguments)'}: one line, a code, exit 2`, async (t) => {
    const r = await run(js, args)
    t.is(r.code, 2, r.stderr)
    t.notRegex(r.stderr, /unexpected error/)
    t.notRegex(r.stderr, /^\s+at /m, 'no stack trace')
    const lines = r.stderr.trim().split('\n')
    t.is(lines.length, 1, r.stderr)
    t.regex(lines[0]!, new RegExp(`^${prog}: `))
    t.true(lines[0]!.endsWith(`[${code}]`), lines[0])
    t.regex(lines[0]!, expected)
  })
}

// Go's remotefs and skr end with logrus.Fatalf on a level logrus cannot parse: exit 1, not flag's 2.
for (const [prog, js, args] of [
  ['remotefs', REMOTEFS_JS, ['-loglevel', 'loud']],
  ['encfs', ENCFS_JS, ['--loglevel', 'loud', 'inspect', 'x.img']],
  ['encfs', ENCFS_JS, ['serve', '-loglevel', 'loud']],
] as const) {
  test(`${prog} ${args.join(' ')}: exit 1, as Go's sidecars on a bad -loglevel, one line naming the levels`, async (t) => {
    const r = await run(js, [...args])
    t.is(r.code, 1, r.stderr)
    t.is(r.stderr, `${prog}: -loglevel "loud" is not a log level: use trace, debug, info, warning, error, fatal, panic (any letter case; warn = warning) [LOG_LEVEL_INVALID]\n`)
  })
}

test('remotefs warns when -base64 carries secrets, and not when they come from EncfsSideCarArgs', async (t) => {
  const { mkdtemp, rm, readFile, writeFile } = await import('node:fs/promises')
  const os = await import('node:os')
  const path = await import('node:path')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-secrets-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The mount point's parent is a file: remotefs stops right after reading the configuration.
  await writeFile(path.join(dir, 'a-file'), '')
  const b64 = Buffer.from(
    JSON.stringify({
      azure_filesystems: [{ mount_point: path.join(dir, 'a-file', 'x'), azure_url: 'https://a.blob.core.windows.net/c/i.img?sv=1&sig=SECRETSIG', raw_key: 'ab'.repeat(32) }],
    }),
  ).toString('base64')
  const common = ['--allow-raw-key', '--no-api', '--runtime-dir', path.join(dir, 'rt'), '-loglevel', 'warning']
  const viaFlag = await run(REMOTEFS_JS, ['-base64', b64, '-logfile', path.join(dir, 'flag.log'), ...common])
  t.is(viaFlag.code, 1, viaFlag.stderr)
  const flagLog = await readFile(path.join(dir, 'flag.log'), 'utf8')
  t.regex(flagLog, /carries secrets \(azure_filesystems\[0\]\.raw_key, a SAS signature in azure_filesystems\[0\]\.azure_url\).*EncfsSideCarArgs/)
  t.false(flagLog.includes('SECRETSIG'))
  const { execFile } = await import('node:child_process')
  const viaEnv = await new Promise<string>((resolve) =>
    execFile(process.execPath, [REMOTEFS_JS, '-logfile', path.join(dir, 'env.log'), ...common], { env: { ...process.env, EncfsSideCarArgs: b64 } }, () =>
      resolve(readFile(path.join(dir, 'env.log'), 'utf8')),
    ),
  )
  t.notRegex(viaEnv, /carries secrets/)
  t.regex(viaEnv, /a-file is not a directory.*MOUNT_POINT_PARENT_NOT_DIRECTORY/)
})
