import type { JsonIssue } from '../encoding/go-json.js'
import { EncfsError } from '../errors/encfs-error.js'

/** A problem in the configuration, by JSON path. */
export type ConfigIssue = JsonIssue

export class ConfigError extends EncfsError {
  readonly issues: ConfigIssue[]

  constructor(code: string, message: string, options?: { cause?: unknown; issues?: ConfigIssue[] }) {
    super(code, message, options)
    this.issues = options?.issues ?? []
  }

  static invalid(issues: ConfigIssue[], source = 'configuration'): ConfigError {
    const lines = issues.map((i) => `  ${i.path}: ${i.message}`)
    return new ConfigError('CONFIG_INVALID', `invalid ${source} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, { issues })
  }
}
