import type { JsonIssue } from '../encoding/go-json.js'
import { EncfsError, type EncfsErrorOptions } from '../errors/encfs-error.js'
import type { ErrorCode } from '../errors/codes.js'

/** A problem in the configuration, by JSON path. */
export type ConfigIssue = JsonIssue

export class ConfigError extends EncfsError {
  readonly issues: ConfigIssue[]

  constructor(code: ErrorCode, message: string, options?: EncfsErrorOptions & { issues?: ConfigIssue[] }) {
    super(code, message, options)
    this.issues = options?.issues ?? []
  }

  static invalid(issues: ConfigIssue[], source = 'configuration'): ConfigError {
    const lines = issues.map((i) => `  ${i.path}: ${i.message}`)
    return new ConfigError('CONFIG_INVALID', `invalid ${source} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, { issues })
  }
}
