// The encfs tool as a user runs it: the one-command demo, inspect and check-key.
import test from 'ava'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { E2eFixture, autoUnlock, ENCFS_JS, blobSas, runEncfs, waitUntil, type TestImage } from '../helpers/e2e.js'
import { vector } from '../helpers/vectors.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let img: TestImage

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 8 })
})

const encfs = runEncfs

test.serial('encfs demo --once: a key released by SKR, an image from Azurite, a real mount, its files, a refused release explained, and nothing left', async (t) => {
  const r = await encfs(['demo', '--once'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`key released by secure key release; mounted: .*remote/share -> \\.filesystem-0 \\(unlock ${(await autoUnlock()).mode}`))
  t.regex(r.stdout, /GET \/status -> "Status OK", filesystem 0 mounted/)
  t.regex(r.stdout, /appended a dm-verity hash tree \(encfs pack --verity\); root hash [0-9a-f]{64} pinned in the configuration/)
  t.regex(r.stdout, /filesystem 0 mounted, [1-9]\d* blocks verified against the root hash, 0 failed/)
  t.regex(r.stdout, /Hello from an encrypted filesystem, streamed from blob storage and mounted by encfs\./)
  t.regex(r.stdout, /encfs: key release of encfs-demo-key-previous from .* failed with HTTP 403 .*\[SKR_RELEASE_REFUSED\]/, 'the demo shows a refused release')
  t.regex(r.stdout, /\[FAIL\] anyOf\[0\]\.allOf\[0\]: x-ms-sevsnpvm-hostdata equals "[0-9a-f]{64}": the token has "[0-9a-f]{64}"/, 'and --explain naming the clause')
  t.regex(r.stdout, /remotefs stopped \(exit 0\)/)
  const workDir = /work directory (\S+)/.exec(r.stdout)?.[1]
  t.truthy(workDir)
  t.false((await readFile('/proc/self/mounts', 'utf8')).includes(workDir!), 'no mount left under the work directory')
  const { stdout: loops } = await exec('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE'])
  t.false(loops.includes(workDir!), 'no loop device left')
  await t.throwsAsync(readFile(`${workDir}/mnt`), undefined, 'work directory removed')
})

test('encfs inspect prints the header summary, as JSON on request', async (t) => {
  const r = await encfs(['inspect', img.image, '--json'])
  t.is(r.code, 0, r.stderr)
  const summary = JSON.parse(r.stdout) as { cipher: string; sectorSize: number; payloadOffset: number; keyslots: { kdf: string }[] }
  t.is(summary.cipher, 'aes-xts-plain64')
  t.is(summary.sectorSize, 4096)
  t.is(summary.payloadOffset, img.payloadOffset)
  t.deepEqual(
    summary.keyslots.map((k) => k.kdf),
    ['pbkdf2'],
  )
  const bad = await encfs(['inspect', img.plain])
  t.not(bad.code, 0)
  t.regex(bad.stderr, /not a LUKS device.*\[LUKS_NOT_LUKS\]/)
})

test('encfs check-key tells whether a key opens the image, without printing it', async (t) => {
  const ok = await encfs(['check-key', img.image, '--key-file', img.keyFile])
  t.is(ok.code, 0, ok.stderr)
  t.regex(ok.stdout, /the key opens keyslot 0/)
  const wrong = await encfs(['check-key', img.image, '--key-hex', 'ab'.repeat(32)])
  t.not(wrong.code, 0)
  t.regex(wrong.stderr, /\[LUKS_WRONG_KEY\]/)
  t.false(wrong.stderr.includes('ab'.repeat(32)))
  const malformed = await encfs(['check-key', img.image, '--key-hex', 'zz'])
  t.regex(malformed.stderr, /--key-hex: raw_key must be the hex/)
})

test("encfs report: a simulated report as hex that verifies, decoding Go's test report, and no silent fallback", async (t) => {
  const stateDir = `${img.dir}/simulated-snp`
  const hex = await encfs(['report', '--attestation', 'simulated', '--simulated-state', stateDir, '--report-data', 'c0ffee'])
  t.is(hex.code, 0, hex.stderr)
  t.regex(hex.stderr, /SIMULATED SEV-SNP report/)
  const raw = Buffer.from(hex.stdout.trim(), 'hex')
  t.is(raw.length, 1184)
  const { simulatedProvider } = await import('../../src/attestation/providers/simulated.js')
  const { verifyReport } = await import('../../src/attestation/verify.js')
  const { thimChainPem } = await import('../../src/attestation/thim.js')
  const chain = thimChainPem(await simulatedProvider({ stateDir }).thimCerts())
  t.is(verifyReport(raw, { chain, reportData: Buffer.from('c0ffee', 'hex') }).report.version, 3)

  const goReport = vector('snp', 'snp_report.bin')
  const text = await encfs(['report', '--decode', goReport])
  t.is(text.code, 0, text.stderr)
  t.regex(text.stdout, /^hostData: cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c$/m)
  t.regex(text.stdout, /^reportedTcb\.hex: 7308000000000003$/m)

  const { access } = await import('node:fs/promises')
  const present = (
    await Promise.all(
      ['/dev/sev-guest', '/dev/sev', '/sys/kernel/config/tsm/report'].map((p) =>
        access(p).then(
          () => true,
          () => false,
        ),
      ),
    )
  ).some(Boolean)
  const auto = await encfs(['report'])
  if (present) t.is(auto.code, 0, 'an SNP source exists here: auto uses it')
  else {
    t.not(auto.code, 0)
    t.regex(auto.stderr, /no SEV-SNP report source found.*\[ATTEST_NO_PROVIDER\]/)
  }
  const bad = await encfs(['report', '--attestation', 'simulated', '--simulated-state', stateDir, '--report-data', 'xyz'])
  t.regex(bad.stderr, /--report-data must be hex/)
})

test.serial('encfs.sh, the container entry point: env to flags, and SIGTERM reaches remotefs, which cleans up and exits 0', async (t) => {
  const { spawn } = await import('node:child_process')
  const { lstat } = await import('node:fs/promises')
  const path = await import('node:path')
  const repo = path.resolve(path.dirname(ENCFS_JS), '..')
  const { dir, parent } = await e2e.workspace()
  const mp = path.join(parent, 'share')
  const logFile = path.join(dir, 'remotefs.log')
  const config = { azure_filesystems: [{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }] }
  const child = spawn('sh', [path.join(repo, 'encfs.sh'), '--allow-raw-key', '--no-api', '--runtime-dir', path.join(dir, 'rt')], {
    env: { ...process.env, ENCFS_HOME: repo, EncfsSideCarArgs: Buffer.from(JSON.stringify(config)).toString('base64'), LogLevel: 'info', LogFile: logFile },
    stdio: 'ignore',
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  e2e.defer(() => child.kill('SIGKILL'))
  await waitUntil(
    'the mount',
    async () =>
      (await lstat(mp).then(
        (s) => s.isSymbolicLink(),
        () => false,
      )) && (await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"ready:'),
    { exited, timeoutMs: 30_000, details: () => readFile(logFile, 'utf8').catch(() => '') },
  )
  const { stdout } = await exec('cat', [path.join(mp, 'hello.txt')])
  t.is(stdout, 'hello, encrypted world\n')
  // The configuration (here with a raw key) stays in the environment, out of /proc/PID/cmdline.
  const cmdline = await readFile(`/proc/${child.pid}/cmdline`, 'utf8')
  t.regex(cmdline, /remotefs\.js/, 'sh exec-ed remotefs')
  t.false(cmdline.includes(Buffer.from(JSON.stringify(config)).toString('base64')), 'the configuration is not on the command line')
  t.false(cmdline.includes('-base64'))
  child.kill('SIGTERM')
  t.is(await exited, 0, 'exec: the signal reached remotefs, not a shell that ignores it')
  await t.throwsAsync(lstat(mp), undefined, 'symlink removed')
  t.regex(await readFile(logFile, 'utf8'), /stopped cleanly/)
})

test.serial('encfs upload: a page blob (for read_write) or a block blob, with a SAS', async (t) => {
  const { BlobClient } = await import('@azure/storage-blob')
  const az = await e2e.azurite()
  await az.service.getContainerClient('uploads').create()
  for (const page of [true, false]) {
    const name = page ? 'page.img' : 'block.img'
    const sas = blobSas(az, 'uploads', name, 'rcw')
    const url = `${az.blobEndpoint}/uploads/${name}?${sas}`
    const r = await encfs(['upload', img.image, url, ...(page ? ['--page'] : [])])
    t.is(r.code, 0, r.stderr)
    t.regex(r.stdout, new RegExp(`as a ${page ? 'page' : 'block'} blob`))
    t.false(r.stdout.includes('sig='), 'the SAS is not printed')
    const props = await new BlobClient(url).getProperties()
    t.is(props.blobType, page ? 'PageBlob' : 'BlockBlob')
    t.true((await new BlobClient(url).downloadToBuffer()).equals(await readFile(img.image)))
  }
})
