// A deployment made for the Go sidecars, run unchanged against encfs: the container's entry point
// and paths, the skr sidecar still holding port 8080, Go's log levels, and text logs.
import test from 'ava'
import { spawn, execFile } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { lstat, readFile, rm, symlink } from 'node:fs/promises'
import { promisify } from 'node:util'
import path from 'node:path'
import { E2eFixture, ENCFS_JS, REMOTEFS_JS, freePort, readFromChild, waitUntil, type TestImage } from '../helpers/e2e.js'

const exec = promisify(execFile)
const repo = path.resolve(path.dirname(ENCFS_JS), '..')
const e2e = new E2eFixture(test)
let img: TestImage
test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 8 })
})

/** Holds a port on loopback as the Go skr sidecar would (if someone else already holds it, so much the better). */
async function holdPort(port: number): Promise<Server | undefined> {
  const server = createServer()
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(undefined) : reject(err)))
    server.listen(port, '127.0.0.1', () => resolve(server))
  })
}

interface Run {
  exited: Promise<number | null>
  kill(): void
  output(): string
}

function run(cmd: string, args: string[], env: Record<string, string>): Run {
  const child = spawn(cmd, args, { env: { ...process.env, Port: '', LogLevel: '', LogFormat: '', LogFile: '', EncfsSideCarArgs: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { exited, kill: () => child.kill('SIGTERM'), output: () => out }
}

/** Waits until `ready` holds for a mount `r` makes: the symlink there and "ready:" in its log. */
function waitMounted(r: Run, mp: string, logFile: string, ready: string): Promise<void> {
  return waitUntil(
    'the mount',
    async () =>
      (await lstat(mp).then(
        (st) => st.isSymbolicLink(),
        () => false,
      )) && (await readFile(logFile, 'utf8').catch(() => '')).includes(ready),
    { exited: r.exited, timeoutMs: 60_000, details: () => r.output() },
  )
}

test.serial(
  "with the skr sidecar on port 8080, Go's /encfs.sh arguments, LogLevel=Warn and LogFormat=text: the filesystem mounts, and the log says the API is unavailable",
  async (t) => {
    const held = await holdPort(8080)
    t.teardown(() => held?.close())
    const tmp = await e2e.workspace()
    const mp = path.join(tmp.parent, 'share')
    const logFile = path.join(tmp.dir, 'encfs.log')
    const b64 = Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }] })).toString('base64')
    // Go's encfs.sh takes the config, log file and level positionally; the level as logrus reads it.
    const r = run('sh', [path.join(repo, 'encfs.sh'), b64, logFile, 'Warn', '--allow-raw-key', '--runtime-dir', path.join(tmp.dir, 'rt')], { ENCFS_HOME: repo, LogFormat: 'text' })
    t.teardown(async () => {
      r.kill()
      await r.exited
    })
    await waitMounted(r, mp, logFile, 'msg="ready:')
    t.is((await readFromChild(path.join(mp, 'hello.txt'))).toString(), 'hello, encrypted world\n')
    const log = await readFile(logFile, 'utf8')
    t.regex(
      log,
      /^time="[^"]+" level=error msg="the attestation and key release API is unavailable \(port 8080 is in use \(another skr sidecar\?\)\): mounting anyway; .*" error=.* port=8080$/m,
    )
    t.regex(
      log,
      /^time="[^"]+" level=warning msg="ready: 1 filesystem\(s\) mounted; API UNAVAILABLE \(port 8080 is in use \(another skr sidecar\?\)\): \/status cannot be reached" api=unavailable /m,
    )
    t.false(/level=info/.test(log), 'Warn is the warning level: no info lines')
    t.false(log.includes('{"level"'), 'text, not JSON')
    r.kill()
    t.is(await r.exited, 0)
  },
)

test.serial('a port chosen with -port (or Port) that is taken is fatal, before anything is mounted', async (t) => {
  const port = await freePort()
  const held = await holdPort(port)
  t.teardown(() => held?.close())
  const tmp = await e2e.workspace()
  const mp = path.join(tmp.parent, 'share')
  const b64 = Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }] })).toString('base64')
  for (const [args, env] of [
    [['-port', String(port)], {}],
    [[], { Port: String(port) }],
  ] as const) {
    const r = run(process.execPath, [REMOTEFS_JS, '-base64', b64, '--allow-raw-key', '--runtime-dir', path.join(tmp.dir, 'rt'), ...args], env)
    t.is(await r.exited, 1)
    t.regex(r.output(), new RegExp(`cannot serve the API on port ${port}: port ${port} is in use .*\\[API_LISTEN_FAILED\\]`))
    await t.throwsAsync(lstat(mp), undefined, 'nothing mounted')
  }
  const bad = run(process.execPath, [REMOTEFS_JS, '-base64', b64, '--runtime-dir', path.join(tmp.dir, 'rt')], { Port: 'http' })
  t.is(await bad.exited, 2)
  t.regex(bad.output(), /env Port "http" is not a port number.*\[API_PORT_INVALID\]/)
})

test("the Go image's /bin/remotefs: remotefs runs through a symlink, with Go's flags and log levels", async (t) => {
  const dir = await e2e.tempDir()
  const dockerfile = await readFile(path.join(repo, 'docker', 'encfs', 'Dockerfile'), 'utf8')
  t.regex(dockerfile, /ln -sf \/opt\/encfs\/bin\/remotefs\.js \/bin\/remotefs/)
  t.notRegex(dockerfile, /^ENV Port=/m, 'the image does not choose the port: the default stays non-fatal')
  const link = path.join(dir, 'remotefs')
  await symlink(REMOTEFS_JS, link)
  const { stdout } = await exec(process.execPath, [link, '--help'])
  t.regex(stdout, /-logformat/)
  const level = await exec(process.execPath, [link, '-loglevel', 'INFO', '-base64', 'bm90IGpzb24='], { env: { ...process.env, EncfsSideCarArgs: '' } }).catch(
    (e: { stderr: string }) => e,
  )
  t.notRegex((level as { stderr: string }).stderr, /LOG_LEVEL_INVALID/)
  t.regex((level as { stderr: string }).stderr, /CONFIG/, 'it got as far as the configuration')
  await rm(link)
})

test.serial('an image Go could open: a LUKS1 image (made by cryptsetup) mounts with the userspace unlock', async (t) => {
  const l1 = await e2e.image({ fsSizeMiB: 8, sectorSize: 512, files: { 'old.txt': 'from a LUKS1 image\n' } })
  await exec('cryptsetup', ['convert', '--type', 'luks1', '-q', l1.image])
  const tmp = await e2e.workspace()
  const mp = path.join(tmp.parent, 'old')
  const b64 = Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${l1.image}`, raw_key: l1.key.toString('hex') }] })).toString('base64')
  const logFile = path.join(tmp.dir, 'remotefs.log')
  const r = run(
    process.execPath,
    [REMOTEFS_JS, '-base64', b64, '--allow-raw-key', '--unlock', 'userspace', '--no-api', '-loglevel', 'info', '-logfile', logFile, '--runtime-dir', path.join(tmp.dir, 'rt')],
    {},
  )
  t.teardown(async () => {
    r.kill()
    await r.exited
  })
  await waitMounted(r, mp, logFile, '"msg":"ready:')
  t.is((await readFromChild(path.join(mp, 'old.txt'))).toString(), 'from a LUKS1 image\n')
  t.regex(await readFile(logFile, 'utf8'), /LUKS1 header validated/)
  r.kill()
  t.is(await r.exited, 0)
})
