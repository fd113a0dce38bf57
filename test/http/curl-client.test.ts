import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { rootCertificates } from 'node:tls'
import { curlTrust } from '../../src/http/curl-client.js'

test("libcurl keeps its system bundle unless NODE_EXTRA_CA_CERTS adds to it; without a bundle, Node.js's roots", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-trust-'))
  try {
    const system = path.join(dir, 'system.pem')
    const extra = path.join(dir, 'extra.pem')
    await writeFile(system, 'SYSTEM-BUNDLE')
    await writeFile(extra, 'EXTRA-CA')
    t.deepEqual(curlTrust(system, {}), { source: system })
    t.deepEqual(curlTrust(system, { NODE_EXTRA_CA_CERTS: system }), { source: system }, 'the bundle named again adds nothing')
    const both = curlTrust(system, { NODE_EXTRA_CA_CERTS: extra })
    t.regex(String(both.caPem), /SYSTEM-BUNDLE[\s\S]*EXTRA-CA/)
    t.is(both.source, `${system} + ${extra}`)
    const noBundle = curlTrust(path.join(dir, 'missing.pem'), {})
    t.true(String(noBundle.caPem).includes(rootCertificates[0]!))
    // An unreadable NODE_EXTRA_CA_CERTS is skipped, as Node.js does.
    t.is(curlTrust(system, { NODE_EXTRA_CA_CERTS: path.join(dir, 'nope.pem') }).source, system)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
