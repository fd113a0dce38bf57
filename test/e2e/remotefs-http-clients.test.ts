// Both HTTP clients of blob reads under a real remotefs: the choice is logged with its reason,
// the flag and the environment variable override it, and each serves the same files.
import test from 'ava'
import path from 'node:path'
import { E2eFixture, stopSidecar, readFromChild, leftovers } from '../helpers/e2e.js'
import { LOADED_MODULES_HOOK, loadedPackages, moduleLogOf } from '../helpers/loaded-modules.js'

const fx = new E2eFixture(test)
const big = Buffer.alloc(5 * 1024 * 1024, 7)

test.serial('auto reads with libcurl and logs why; --http node and EncfsHttp=node use the Node.js pipeline; each serves the files', async (t) => {
  const img = await fx.image({ fsSizeMiB: 24, files: { 'hello.txt': 'hello over HTTP\n', 'big.bin': big } })
  const { sasUrl } = await fx.upload(img.image, { kind: 'block' })
  const ws = await fx.workspace()
  const cases: [string, { args?: string[]; env?: Record<string, string> }, RegExp][] = [
    ['auto', {}, /blob reads over libcurl \(libcurl\/[\d.]+ loads/],
    ['flag', { args: ['--http', 'node'] }, /blob reads over the Node\.js SDK pipeline \(requested\)/],
    ['env', { env: { EncfsHttp: 'node' } }, /blob reads over the Node\.js SDK pipeline \(requested\)/],
  ]
  for (const [name, o, expected] of cases) {
    const mp = path.join(ws.parent, name)
    const modules = moduleLogOf(ws.parent, name)
    const sidecar = await fx.mount([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') }], {
      args: ['--allow-raw-key', ...(o.args ?? [])],
      env: { ...o.env, ENCFS_TEST_MODULE_LOG: modules },
      nodeArgs: ['--enable-source-maps', '--import', LOADED_MODULES_HOOK],
    })
    t.regex(await sidecar.log(), expected, name)
    // Modules a mount does not use are not loaded: the Azure SDK when libcurl moves the bytes of a
    // read-only blob, the API's and gRPC's servers when neither is asked for.
    const loaded = await loadedPackages(modules)
    t.true(loaded.has('pino') && loaded.has('yargs'), `${name}: the module log works (${[...loaded].join(', ')})`)
    for (const unused of ['fastify', '@grpc/grpc-js', '@azure/identity']) t.false(loaded.has(unused), `${name}: ${unused} is not loaded`)
    const sdk = ['@azure/storage-blob', '@azure/core-rest-pipeline'].filter((p) => loaded.has(p))
    t.deepEqual(sdk, name === 'auto' ? [] : ['@azure/storage-blob', '@azure/core-rest-pipeline'], `${name}: the SDK is loaded only for the Node.js client`)
    t.is((await readFromChild(path.join(mp, 'hello.txt'))).toString(), 'hello over HTTP\n')
    t.true((await readFromChild(path.join(mp, 'big.bin'))).equals(big), `${name}: big.bin`)
    t.is(await stopSidecar(sidecar), 0)
    t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  }
  const bad = await fx.runToEnd([{ mount_point: path.join(ws.parent, 'bad'), azure_url: sasUrl, raw_key: img.key.toString('hex') }], {
    args: ['--allow-raw-key', '--http', 'curl'],
  })
  t.not(bad.code, 0)
  t.regex(bad.output, /http.*curl|Invalid values/s)
})
