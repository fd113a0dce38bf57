// The examples' pods (a Kubernetes Pod manifest, an ACI ARM template) turned into the podman runs
// that start their containers here: `command` -> --entrypoint, `args` -> the command, env,
// privileged, and emptyDir volumes as one shared host directory with the mounts' propagation.
// What podman cannot do here is listed, so a test can say it rather than pass over it.
import { parse } from 'yaml'
import type { E2eFixture } from './e2e.js'
import { sharedVolume } from './pod.js'
import { removeContainer, runContainer, type Container } from './podman.js'

export type Propagation = 'Bidirectional' | 'HostToContainer' | 'None'

export interface ContainerSpec {
  name: string
  command?: string[]
  args?: string[]
  env: Record<string, string>
  privileged: boolean
  mounts: { volume: string; path: string; propagation: Propagation }[]
}

export interface PodSpec {
  containers: ContainerSpec[]
  /** Volume name -> its kind; only emptyDir is made here. */
  volumes: Record<string, string>
  /** What the manifest asks for that these runs do not do (to be said in the test's output). */
  notExercised: string[]
}

/** `${NAME}` replaced from `values` (what envsubst does); a name without a value is an error. */
export function envsubst(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}/g, (_m, name: string) => {
    const v = values[name]
    if (v === undefined) throw new Error(`no value for \${${name}}`)
    return v
  })
}

interface K8sContainer {
  name: string
  command?: string[]
  args?: string[]
  env?: { name: string; value?: string }[]
  securityContext?: { privileged?: boolean }
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: Propagation }[]
  [other: string]: unknown
}

/** A `kind: Pod` manifest, after envsubst. */
export function fromKubernetes(manifest: string): PodSpec {
  const pod = parse(manifest) as { kind: string; metadata?: { labels?: object }; spec: { containers: K8sContainer[]; volumes?: Record<string, unknown>[]; [k: string]: unknown } }
  if (pod.kind !== 'Pod') throw new Error(`not a Pod manifest: kind ${pod.kind}`)
  const notExercised: string[] = []
  for (const key of Object.keys(pod.spec)) if (!['containers', 'volumes', 'terminationGracePeriodSeconds'].includes(key)) notExercised.push(`spec.${key}`)
  if (pod.metadata?.labels) notExercised.push(`metadata.labels (${Object.keys(pod.metadata.labels).join(', ')})`)
  const volumes: Record<string, string> = {}
  for (const v of pod.spec.volumes ?? []) {
    const kind = Object.keys(v).find((k) => k !== 'name') ?? 'unknown'
    volumes[String(v.name)] = kind
    if (kind !== 'emptyDir') notExercised.push(`volume ${String(v.name)} (${kind})`)
  }
  const containers = pod.spec.containers.map((c): ContainerSpec => {
    for (const key of Object.keys(c))
      if (!['name', 'image', 'command', 'args', 'env', 'securityContext', 'volumeMounts', 'imagePullPolicy'].includes(key)) notExercised.push(`${c.name}.${key}`)
    return {
      name: c.name,
      ...(c.command ? { command: c.command } : {}),
      ...(c.args ? { args: c.args } : {}),
      env: Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ''])),
      privileged: c.securityContext?.privileged === true,
      mounts: (c.volumeMounts ?? []).map((m) => ({ volume: m.name, path: m.mountPath, propagation: m.mountPropagation ?? 'None' })),
    }
  })
  return { containers, volumes, notExercised }
}

interface ArmContainer {
  name: string
  properties: {
    command?: string[]
    environmentVariables?: { name: string; value?: string; secureValue?: string }[]
    securityContext?: { privileged?: boolean }
    volumeMounts?: { name: string; mountPath: string }[]
  }
}

/**
 * The container group of an ARM template, with its parameters. ACI shares an emptyDir between the
 * group's containers and a privileged container's mounts under it reach the others (what the Go
 * encfs example relies on): here, privileged mounts are Bidirectional, the others HostToContainer.
 */
export function fromArmTemplate(template: string, parameters: Record<string, string>): PodSpec {
  const t = JSON.parse(template) as { resources: { type: string; identity?: unknown; properties: Record<string, unknown> }[] }
  const group = t.resources.find((r) => r.type === 'Microsoft.ContainerInstance/containerGroups')
  if (!group) throw new Error('no container group in the template')
  const value = (v: string | undefined) => (v ?? '').replace(/^\[parameters\('(\w+)'\)\]$/, (_m, name: string) => parameters[name] ?? `<no parameter ${name}>`)
  const notExercised = Object.keys(group.properties)
    .filter((k) => !['containers', 'volumes', 'osType', 'restartPolicy'].includes(k))
    .map((k) => `properties.${k}`)
  if (group.identity) notExercised.push('identity (the managed identity: the IMDS emulator stands in)')
  const volumes: Record<string, string> = {}
  for (const v of (group.properties.volumes ?? []) as Record<string, unknown>[]) volumes[String(v.name)] = Object.keys(v).find((k) => k !== 'name') ?? 'unknown'
  const containers = (group.properties.containers as ArmContainer[]).map((c): ContainerSpec => {
    const privileged = c.properties.securityContext?.privileged === true
    return {
      name: c.name,
      ...(c.properties.command ? { command: c.properties.command } : {}),
      env: Object.fromEntries((c.properties.environmentVariables ?? []).map((e) => [e.name, value(e.value ?? e.secureValue)])),
      privileged,
      mounts: (c.properties.volumeMounts ?? []).map((m) => ({ volume: m.name, path: m.mountPath, propagation: privileged ? 'Bidirectional' : 'HostToContainer' })),
    }
  })
  return { containers, volumes, notExercised }
}

const PROPAGATION: Record<Propagation, string> = { Bidirectional: 'rshared', HostToContainer: 'rslave', None: 'rprivate' }

/**
 * Starts the pod's containers in order, as a kubelet does (without waiting for one another): the
 * emptyDirs made as shared host directories, `platform` given to every container, `env` per
 * container overriding the manifest where the local stand-ins must replace Azure's endpoints.
 */
export async function runPod(
  e2e: E2eFixture,
  spec: PodSpec,
  o: { platform: { env: Record<string, string>; volumes: string[] }; env?: Record<string, Record<string, string>>; only?: string[] },
): Promise<Record<string, Container>> {
  const dirs: Record<string, string> = {}
  for (const [name, kind] of Object.entries(spec.volumes)) if (kind === 'emptyDir') dirs[name] = await sharedVolume(e2e)
  const started: Record<string, Container> = {}
  for (const c of spec.containers) {
    if (o.only && !o.only.includes(c.name)) continue
    const volumes = c.mounts.filter((m) => dirs[m.volume]).map((m) => `${dirs[m.volume]}:${m.path}:${PROPAGATION[m.propagation]}`)
    const container = await runContainer(c.name, {
      privileged: c.privileged,
      env: { ...o.platform.env, ...c.env, ...o.env?.[c.name] },
      volumes: [...o.platform.volumes, ...volumes],
      ...(c.command ? { entrypoint: JSON.stringify(c.command) } : {}),
      ...(c.args ? { args: c.args } : {}),
    })
    e2e.defer(() => removeContainer(container))
    started[c.name] = container
  }
  return started
}
