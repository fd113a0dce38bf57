import { pino, type Logger, type LevelWithSilent } from 'pino'
import { redactSecrets } from './redact.js'

export type { Logger }

/** The Go sidecar's logrus level names; `warning` and `panic` have pino equivalents. */
export const GO_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'fatal', 'panic'] as const
export type GoLogLevel = (typeof GO_LOG_LEVELS)[number]

export function pinoLevel(level: string): LevelWithSilent {
  switch (level) {
    case 'warning':
    case 'warn':
      return 'warn'
    case 'panic':
      return 'fatal'
    case 'trace':
    case 'debug':
    case 'info':
    case 'error':
    case 'fatal':
    case 'silent':
      return level
    default:
      throw new RangeError(`unknown log level "${level}": use one of ${GO_LOG_LEVELS.join('|')}`)
  }
}

/**
 * Paths that may hold secrets anywhere they appear in a log object. Secrets are also kept out by
 * construction (keys are Buffers we never log); this is the second line of defence.
 */
export const REDACT_PATHS = [
  'key', 'rawKey', 'raw_key', 'passphrase', 'token', 'bearer_token', 'access_token', 'authorization',
  '*.key', '*.rawKey', '*.raw_key', '*.passphrase', '*.token', '*.bearer_token', '*.access_token',
  '*.authorization', 'headers.authorization', 'req.headers.authorization',
]

export interface LoggerOptions {
  level?: string
  /** Append JSON lines to this file instead of stderr, as the Go sidecar's -logfile does. */
  file?: string
  name?: string
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.file
    ? pino.destination({ dest: options.file, append: true, mkdir: true, sync: true })
    : pino.destination({ fd: 2, sync: true })
  return pino(
    {
      name: options.name ?? 'encfs',
      level: pinoLevel(options.level ?? 'warning'),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    // Credentials in URLs and messages can sit anywhere in a line (an error's stack, a nested
    // field): the finished line is redacted as a whole.
    { write: (line: string) => destination.write(redactSecrets(line)) },
  )
}

export const silentLogger: Logger = pino({ level: 'silent' })
