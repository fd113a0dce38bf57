import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pino, type Logger } from 'pino'
import { ConfigError } from '../../src/config/errors.js'
import { vector } from '../helpers/vectors.js'

/** The sample configurations (test/vectors/config, docs/test-vectors.md#config), or ENCFS_SPEC_CONFIG_DIR. */
export const SAMPLES_DIR = process.env.ENCFS_SPEC_CONFIG_DIR ?? vector('config')

export function sampleText(name: string): string {
  return readFileSync(path.join(SAMPLES_DIR, name), 'utf8')
}

export function sampleJson(name: string): unknown {
  return JSON.parse(sampleText(name)) as unknown
}

/** What a user does: `base64 -w0 config.json`. */
export function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

export function b64json(value: unknown): string {
  return b64(JSON.stringify(value))
}

/** URL-safe base64 without padding, as the Go repo's Python tests produce (`-` `_`). */
export function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url')
}

export const BLOB_URL = 'https://acct.blob.core.windows.net/container/image.img'

/** A filesystem that validates on its own (raw_key test mode), to be varied per test. */
export function rawFs(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { mount_point: '/mnt/remote/share', azure_url: BLOB_URL, raw_key: '00112233445566778899aabbccddeeff', ...over }
}

/** A filesystem with secure key release, as in the remotefs README. */
export function releaseFs(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    mount_point: '/mnt/remote/share',
    azure_url: BLOB_URL,
    key: { kid: 'MyKey', authority: { endpoint: 'sharedneu.neu.attest.azure.net' }, akv: { endpoint: 'myvault.vault.azure.net' } },
    ...over,
  }
}

export function asConfigError(err: unknown): ConfigError {
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(err)}`)
  return err
}

/** A pino logger whose JSON lines are collected in memory. */
export function captureLogger(level = 'trace'): { logger: Logger; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = []
  const stream = {
    write: (msg: string) => {
      chunks.push(msg)
    },
  }
  const logger = pino({ level }, stream)
  const text = () => chunks.join('')
  const lines = () =>
    text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { logger, lines, text }
}
