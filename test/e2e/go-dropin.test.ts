// A deployment made for the Go sidecars, run unchanged against encfs: the container's entry point
// and paths, no port taken unless the API is asked for, Go's log levels, and Go's text logs.
import test from 'ava'
import { spawn, execFile } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { lstat, readFile, rm, symlink } from 'node:fs/promises'
import { promisify } from 'node:util'
import path from 'node:path'
import { E2eFixture, ENCFS_JS, REMOTEFS_JS, freePort, listeningPorts, readFromChild, waitUntil, type TestImage } from '../helpers/e2e.js'

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
  pid: number
  exited: Promise<number | null>
  kill(): void
  output(): string
}

function run(cmd: string, args: string[], env: Record<string, string>): Run {
  const child = spawn(cmd, args, {
    env: { ...process.env, Port: '', EncfsApi: '', LogLevel: '', LogFormat: '', LogFile: '', EncfsSideCarArgs: '', SkrSideCarArgs: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { pid: child.pid!, exited, kill: () => child.kill('SIGTERM'), output: () => out }
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
  "a Go deployment's environment through /encfs.sh (EncfsSideCarArgs, LogFile, LogLevel=Warn, LogFormat=text): it mounts and listens on no port, as the Go encfs image",
  async (t) => {
    const tmp = await e2e.workspace()
    const mp = path.join(tmp.parent, 'share')
    const logFile = path.join(tmp.dir, 'encfs.log')
    const b64 = Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }] })).toString('base64')
    // Go's encfs.sh reads only the environment; the raw key is this test's, so it opts in.
    const r = run('sh', [path.join(repo, 'encfs.sh'), '--allow-raw-key', '--runtime-dir', path.join(tmp.dir, 'rt')], {
      ENCFS_HOME: repo,
      EncfsSideCarArgs: b64,
      LogFile: logFile,
      LogLevel: 'Warn',
      LogFormat: 'text',
    })
    t.teardown(async () => {
      r.kill()
      await r.exited
    })
    await waitMounted(r, mp, logFile, 'msg=ready:')
    t.is((await readFromChild(path.join(mp, 'hello.txt'))).toString(), 'hello, encrypted world\n')
    t.deepEqual(await listeningPorts(r.pid), [], 'no port taken from the application containers (8080 is theirs)')
    const log = await readFile(logFile, 'utf8')
    t.regex(log, /^level=warning msg=ready: 1 filesystem\(s\) mounted; API off \(not asked for: set -port\/Port or EncfsApi=true\) api=off mounts=/m)
    t.false(/level=info/.test(log), 'Warn is the warning level: no info lines')
    t.false(log.includes('{"level"') || log.includes('time='), "text as Go's logrus writes it: no JSON, no timestamp")
    r.kill()
    t.is(await r.exited, 0)
  },
)

test.serial('the API is served only when asked for: -port or Port, --api or EncfsApi=true; --no-api wins; a chosen port that is taken is fatal', async (t) => {
  const tmp = await e2e.workspace()
  const mp = path.join(tmp.parent, 'share')
  const logFile = path.join(tmp.dir, 'remotefs.log')
  const b64 = Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }] })).toString('base64')
  const common = ['-base64', b64, '--allow-raw-key', '--runtime-dir', path.join(tmp.dir, 'rt'), '-logfile', logFile]
  const served = async (args: string[], env: Record<string, string>): Promise<number[]> => {
    const r = run(process.execPath, [REMOTEFS_JS, ...common, ...args], env)
    t.teardown(() => r.kill())
    await waitMounted(r, mp, logFile, '"msg":"ready:')
    const ports = await listeningPorts(r.pid)
    r.kill()
    t.is(await r.exited, 0)
    await rm(logFile)
    return ports
  }
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()]
  t.deepEqual(await served(['-port', String(p1)], {}), [p1])
  t.deepEqual(await served([], { Port: String(p2) }), [p2])
  t.deepEqual(await served([], { Port: String(p3), EncfsApi: 'true' }), [p3])
  t.deepEqual(await served(['--no-api'], { Port: String(p3) }), [])
  t.deepEqual(await served([], { Port: String(p3), EncfsApi: 'false' }), [])

  const port = await freePort()
  const held = await holdPort(port)
  t.teardown(() => held?.close())
  for (const [args, env] of [
    [['-port', String(port)], {}],
    [[], { Port: String(port) }],
    [['--api'], { Port: String(port) }],
  ] as const) {
    const r = run(process.execPath, [REMOTEFS_JS, ...common, ...args], env)
    t.is(await r.exited, 1)
    t.regex(
      r.output(),
      new RegExp(`cannot serve the API on port ${port}: the port is in use; pick another with -port \\(or turn the API off with --no-api\\) \\[API_LISTEN_FAILED\\]`),
    )
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
  t.notRegex(dockerfile, /^ENV (Port|EncfsApi)=/m, 'the image does not turn the API on: the Go encfs image serves none')
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

test.serial(
  "-logformat text: Go's logrus lines at Go's points, which runbooks grep for (Starting …, N filesystems to mount:, Mounting Azure Storage blob N..., Failed to mount filesystems: …)",
  async (t) => {
    const tmp = await e2e.workspace()
    const link = path.join(tmp.dir, 'remotefs')
    await symlink(REMOTEFS_JS, link)
    const mp = path.join(tmp.parent, 'share')
    const logFile = path.join(tmp.dir, 'remotefs.log')
    const config = (key: string) => Buffer.from(JSON.stringify({ azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: key }] })).toString('base64')
    const args = ['--allow-raw-key', '--runtime-dir', path.join(tmp.dir, 'rt'), '-loglevel', 'info', '-logformat', 'text', '-logfile', logFile]
    const ok = run(process.execPath, [link, ...args], { EncfsSideCarArgs: config(img.key.toString('hex')) })
    t.teardown(() => ok.kill())
    await waitMounted(ok, mp, logFile, 'msg=ready:')
    ok.kill()
    t.is(await ok.exited, 0)
    const lines = (await readFile(logFile, 'utf8')).split('\n')
    t.is(lines[0], `level=info msg=Starting ${link}...`)
    t.true(lines.includes('level=info msg=1 filesystems to mount:'), lines.join('\n'))
    t.true(lines.includes(`level=info msg=  ${mp} -> file://${img.image} (read-write: false)`))
    t.true(lines.includes('level=info msg=Mounting Azure Storage blob 0...'))

    await rm(logFile)
    const wrongKey = run(process.execPath, [link, ...args], { EncfsSideCarArgs: config('00'.repeat(32)) })
    t.is(await wrongKey.exited, 1)
    t.regex(await readFile(logFile, 'utf8'), /^level=fatal msg=Failed to mount filesystems: filesystem 0 \(.*\): .*\S$/m)
    await rm(link)
  },
)
