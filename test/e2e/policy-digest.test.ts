// encfs policy-digest as Go's securitypolicydigest: -p or -f (not both), strict base64, -v output.
import test from 'ava'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import os from 'node:os'
import path from 'node:path'
import { ENCFS_JS } from '../helpers/e2e.js'
import { vector } from '../helpers/vectors.js'

const exec = promisify(execFile)
const digestOf = async (args: string[]) =>
  exec(process.execPath, [ENCFS_JS, 'policy-digest', ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  )
const expected = 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c'

test("policy-digest: -p and -f (the file may end in a newline) give Go's digest; -v prints as Go does", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-policy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = vector('snp', 'uvm_security_policy.base64')
  const policy = (await readFile(file, 'utf8')).trim()
  t.is((await digestOf(['-p', policy])).stdout, `${expected}\n`)
  const withNewlines = path.join(dir, 'policy.b64')
  await writeFile(withNewlines, `${policy.slice(0, 40)}\r\n${policy.slice(40)}\n`)
  t.is((await digestOf(['-f', withNewlines])).stdout, `${expected}\n`)
  const verbose = await digestOf(['-v', '-p', Buffer.from('package policy\n').toString('base64')])
  t.is(verbose.stdout, `inittimeData package policy\n\ninittimeData sha-256 digest ${createHash('sha256').update('package policy\n').digest('hex')}\n`)
})

test('policy-digest refuses what Go refuses: both -p and -f, and anything but standard padded base64', async (t) => {
  const both = await digestOf(['-p', 'YWJj', '-f', vector('snp', 'uvm_security_policy.base64')])
  t.is(both.code, 1)
  t.regex(both.stderr, /not both .*\[POLICY_BOTH\]/)
  for (const bad of ['YWJjZA', 'YW-j', 'YWJj ', 'YWJj\t']) {
    const r = await digestOf(['-p', bad])
    t.is(r.code, 1, bad)
    t.regex(r.stderr, /standard base64 with padding is required.*\[POLICY_BASE64\]/, bad)
    t.is(r.stdout, '')
  }
})
