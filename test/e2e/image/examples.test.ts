// The examples run: examples/encfs/'s ACI template and AKS pod manifests, their containers started
// with podman as ACI or a kubelet would start them (test/helpers/pod-spec.ts), on the local stack.
// What podman cannot do here (identity, policies, runtime classes, probes, other volume kinds) is
// printed by each test, and listed in examples/encfs/README.md.
import test, { type ExecutionContext } from 'ava'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import path from 'node:path'
import { E2eFixture, REPO } from '../../helpers/e2e.js'
import { buildImage, leftoverContainers, IMAGE, type Container } from '../../helpers/podman.js'
import { podPlatform, type PodPlatform } from '../../helpers/pod.js'
import { envsubst, fromArmTemplate, fromKubernetes, runPod, type PodSpec } from '../../helpers/pod-spec.js'
import { keyProviderClients, call } from '../../helpers/keyprovider-client.js'

const e2e = new E2eFixture(test)
const examples = path.join(REPO, 'examples', 'encfs')
let pod: PodPlatform
let sidecarArgs: string

test.before(async () => {
  await buildImage((line) => console.log(`image: ${line}`))
  pod = await podPlatform(e2e)
  const img = await e2e.image({ fsSizeMiB: 8, files: { 'hello.txt': 'hello from the example\n' } })
  await pod.stack.importKey('example-key', img.key)
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  // encfs-sidecar-args.json with its placeholders filled for the local stack.
  const args = JSON.parse(await readFile(path.join(examples, 'encfs-sidecar-args.json'), 'utf8')) as {
    azure_info: { identity: { client_id: string } }
    azure_filesystems: { azure_url: string; azure_url_private: boolean; key: { kid: string; authority: { endpoint: string }; akv: { endpoint: string } } }[]
  }
  args.azure_info.identity.client_id = 'pod-identity'
  const fs = args.azure_filesystems[0]!
  Object.assign(fs, { azure_url: sasUrl, azure_url_private: false })
  Object.assign(fs.key, { kid: 'example-key', authority: { endpoint: pod.stack.maa.endpoint }, akv: { endpoint: pod.stack.akv.endpoint } })
  sidecarArgs = Buffer.from(JSON.stringify(args)).toString('base64')
})

test.after.always('no container of this file is left', async () => {
  const left = await leftoverContainers()
  if (left.length > 0) throw new Error(`containers left behind: ${left.join(', ')}`)
})

function sayNotExercised(t: ExecutionContext, what: string, spec: PodSpec): void {
  const line = `${what}: not exercised by podman here: ${spec.notExercised.join('; ')}`
  t.log(line)
  console.log(`examples: ${line}`)
}

/**
 * The pod is deleted: every container gets SIGTERM at once; the sidecar exits 0 within the grace
 * period. The apps' `sleep infinity` under sh ignores SIGTERM (a kubelet would kill it after the
 * grace period): they get 2 s, which keeps the test short.
 */
async function deletePod(t: ExecutionContext, sidecar: Container, others: Container[]): Promise<void> {
  const [stopped] = await Promise.all([sidecar.stop(30), ...others.map((c) => c.stop(2))])
  t.is(stopped.exitCode, 0, await sidecar.logs())
  t.true(stopped.ms < 30_000, `the sidecar exited within the grace period (${stopped.ms} ms)`)
}

test.serial('aci-arm-template.json: the encfs sidecar and the app container of the group; the app prints the mounted file', async (t) => {
  const template = await readFile(path.join(examples, 'aci-arm-template.json'), 'utf8')
  const spec = fromArmTemplate(template, { encfsImage: IMAGE, appImage: IMAGE, encfsSideCarArgs: sidecarArgs })
  sayNotExercised(t, 'aci-arm-template.json', spec)
  t.deepEqual(
    spec.containers.map((c) => [c.name, c.privileged]),
    [
      ['encfs', true],
      ['app', false],
    ],
  )
  const c = await runPod(e2e, spec, { platform: pod })
  await c.app!.waitForLog(/^hello from the example$/m)
  await deletePod(t, c.encfs!, [c.app!])
})

test.serial('aks-encfs-pod.yaml: emptyDir with Bidirectional / HostToContainer propagation; the app prints the mounted file', async (t) => {
  const manifest = envsubst(await readFile(path.join(examples, 'aks-encfs-pod.yaml'), 'utf8'), {
    SERVICE_ACCOUNT_NAME: 'encfs-example',
    ENCFS_IMAGE: IMAGE,
    APP_IMAGE: IMAGE,
    ENCFS_SIDECAR_ARGS: sidecarArgs,
  })
  const spec = fromKubernetes(manifest)
  sayNotExercised(t, 'aks-encfs-pod.yaml', spec)
  t.deepEqual(
    spec.containers.flatMap((c) => c.mounts.map((m) => `${c.name}:${m.propagation}`)),
    ['encfs:Bidirectional', 'app:HostToContainer'],
  )
  const c = await runPod(e2e, spec, { platform: pod })
  await c.app!.waitForLog(/^hello from the example$/m)
  await deletePod(t, c.encfs!, [c.app!])
})

test.serial('aks-kata-keyprovider/keyprovider-pod.yaml: the skr container (/skr.sh, ServerType=grpc, Port=50000) serves the keyprovider', async (t) => {
  const port = 50000
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
    probe.once('error', () => reject(new Error(`port ${port} is in use: the example's keyprovider listens there; stop what holds it`)))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()))
  })
  const manifest = envsubst(await readFile(path.join(examples, 'aks-kata-keyprovider', 'keyprovider-pod.yaml'), 'utf8'), {
    SERVICE_ACCOUNT_NAME: 'encfs-example',
    ENCFS_IMAGE: IMAGE,
    CLIENT_IMAGE: IMAGE,
  })
  const spec = fromKubernetes(manifest)
  // The certificate cache (LocalTHIM at the link-local IMDS address) and the Kata security context
  // (a hostPath) are Azure's: the platform stand-ins replace them.
  sayNotExercised(t, 'keyprovider-pod.yaml', {
    ...spec,
    notExercised: [
      ...spec.notExercised,
      'skr.env SkrSideCarArgs and UVM_SECURITY_CONTEXT_DIR (Azure endpoints)',
      'the app container (its image needs grpcurl, which Debian does not package)',
    ],
  })
  const c = await runPod(e2e, spec, { platform: pod, only: ['skr'], env: { skr: { SkrSideCarArgs: '', UVM_SECURITY_CONTEXT_DIR: '/security-context-test' } } })
  await c.skr!.waitForLog(/"msg":"ready: serving the keyprovider gRPC service"/)
  const clients = keyProviderClients(`127.0.0.1:${port}`)
  t.teardown(() => clients.close())
  t.deepEqual(await call(clients.keyprovider, 'SayHello', { name: 'app' }), { message: 'Hello app' }, "the app container's readiness loop gets its answer")
  await deletePod(t, c.skr!, [])
})
