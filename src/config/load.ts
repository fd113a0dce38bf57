import { ConfigError, type ConfigIssue } from './errors.js'
import { decodeSidecarArgs } from './decode.js'
import { validateConfig, validateSkrConfig, type SkrConfig } from './validate.js'
import type { EncfsConfig } from './schema.js'
import { redactUrl, urlCredentials } from '../log/redact.js'

export interface LoadedConfig {
  config: EncfsConfig
  /** What Go accepts but is unwise (plain http, a placeholder salt...), to log. */
  warnings: ConfigIssue[]
  /** Where it came from, for messages: `-base64` or `EncfsSideCarArgs`. */
  source: string
}

/** -base64 wins over the EncfsSideCarArgs environment variable, as in the Go sidecar. */
export function loadConfig(o: { base64?: string; env?: NodeJS.ProcessEnv }): LoadedConfig {
  const env = o.env ?? process.env
  let text: string | undefined
  let source: string
  if (o.base64 !== undefined && o.base64 !== '') {
    text = o.base64
    source = '-base64'
  } else {
    text = env.EncfsSideCarArgs
    source = 'EncfsSideCarArgs'
  }
  if (text === undefined || text.trim() === '') {
    throw new ConfigError('CONFIG_MISSING', 'no configuration: pass -base64 <base64 of the JSON> or set the EncfsSideCarArgs environment variable')
  }
  const warnings: ConfigIssue[] = []
  return { config: validateConfig(decodeSidecarArgs(text, source), source, warnings), source, warnings }
}

/** The skr sidecar's configuration (SkrSideCarArgs, AaspSideCarArgs, or -base64 of `encfs serve`), and what to warn about. */
export function loadSkrConfig(text: string, source: string): { config: SkrConfig; warnings: ConfigIssue[] } {
  const warnings: ConfigIssue[] = []
  return { config: validateSkrConfig(decodeSidecarArgs(text, source), `${source} (the skr configuration)`, warnings), warnings }
}

/** The configuration as it may be logged: no raw keys, bearer tokens or SAS signatures. */
export function redactConfig(cfg: EncfsConfig): EncfsConfig {
  return {
    ...cfg,
    azure_filesystems: cfg.azure_filesystems.map((fs) => ({
      ...fs,
      azure_url: redactUrl(fs.azure_url),
      ...(fs.raw_key ? { raw_key: '[redacted]' } : {}),
      ...(fs.verity?.hash_url ? { verity: { ...fs.verity, hash_url: redactUrl(fs.verity.hash_url) } } : {}),
      ...(fs.key ? { key: { ...fs.key, ...(fs.key.akv ? { akv: { ...fs.key.akv, ...(fs.key.akv.bearer_token ? { bearer_token: '[redacted]' } : {}) } } : {}) } } : {}),
    })),
  }
}

/**
 * The secrets a configuration carries, by JSON path: given with -base64 they sit in
 * /proc/PID/cmdline, which every local user can read.
 */
export function configSecrets(cfg: EncfsConfig): string[] {
  const found: string[] = []
  cfg.azure_filesystems.forEach((fs, i) => {
    const at = `azure_filesystems[${i}]`
    if (fs.raw_key) found.push(`${at}.raw_key`)
    for (const kind of urlCredentials(fs.azure_url)) found.push(`${kind} in ${at}.azure_url`)
    for (const kind of urlCredentials(fs.verity?.hash_url ?? '')) found.push(`${kind} in ${at}.verity.hash_url`)
    if (fs.key?.akv?.bearer_token) found.push(`${at}.key.akv.bearer_token`)
  })
  return found
}
