import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino'
import { EncfsError } from '../errors/encfs-error.js'
import { redactSecrets } from './redact.js'

export type { Logger }

/** The Go sidecar's logrus level names; `warning` and `panic` have pino equivalents. */
export const GO_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'fatal', 'panic'] as const
export type GoLogLevel = (typeof GO_LOG_LEVELS)[number]

/** JSON lines (pino, the default) or the Go sidecars' logrus text lines (level=info msg=… key=value). */
export const LOG_FORMATS = ['json', 'text'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/**
 * A level as logrus.ParseLevel reads it (the Go sidecars' -loglevel): any letter case, `warn`
 * for `warning`. Also `silent`, which only encfs knows. Anything else is a usage error.
 */
export function parseLogLevel(text: string, flag = '-loglevel'): GoLogLevel | 'silent' {
  const level = text.toLowerCase()
  if (level === 'warn') return 'warning'
  if (level === 'silent' || (GO_LOG_LEVELS as readonly string[]).includes(level)) return level as GoLogLevel | 'silent'
  throw new EncfsError('LOG_LEVEL_INVALID', `${flag} ${JSON.stringify(text)} is not a log level: use ${GO_LOG_LEVELS.join(', ')} (any letter case; warn = warning)`)
}

export function parseLogFormat(text: string, flag = '-logformat'): LogFormat {
  const format = text.toLowerCase()
  if ((LOG_FORMATS as readonly string[]).includes(format)) return format as LogFormat
  throw new EncfsError(
    'LOG_FORMAT_INVALID',
    `${flag} ${JSON.stringify(text)} is not a log format: use json (the default) or text (logrus-style key=value lines, as the Go sidecars write)`,
  )
}

/**
 * The logging flags every encfs program takes, as the Go sidecars take them: -loglevel (env
 * LogLevel, default warning), -logfile (env LogFile), and -logformat (env LogFormat) on top.
 * createLogger checks the values (a yargs coerce would hide the error's code).
 */
export function logOptions(env: NodeJS.ProcessEnv = process.env) {
  return {
    loglevel: { type: 'string', default: env.LogLevel || 'warning', describe: `log level: ${GO_LOG_LEVELS.join('|')}, any case, warn = warning (env LogLevel)` },
    logfile: { type: 'string', default: env.LogFile || undefined, describe: 'append logs to this file instead of stderr (env LogFile)' },
    logformat: { type: 'string', default: env.LogFormat || 'json', describe: "json lines, or text: the Go sidecars' logrus lines, level=info msg=… key=value (env LogFormat)" },
  } as const
}

export function pinoLevel(level: string): LevelWithSilent {
  switch (parseLogLevel(level)) {
    case 'warning':
      return 'warn'
    case 'panic':
      return 'fatal'
    case 'trace':
      return 'trace'
    case 'debug':
      return 'debug'
    case 'info':
      return 'info'
    case 'error':
      return 'error'
    case 'fatal':
      return 'fatal'
    case 'silent':
      return 'silent'
  }
}

/**
 * Paths that may hold secrets anywhere they appear in a log object. Secrets are also kept out by
 * construction (keys are Buffers we never log); this is the second line of defence.
 */
export const REDACT_PATHS = [
  'key',
  'rawKey',
  'raw_key',
  'passphrase',
  'token',
  'bearer_token',
  'access_token',
  'authorization',
  '*.key',
  '*.rawKey',
  '*.raw_key',
  '*.passphrase',
  '*.token',
  '*.bearer_token',
  '*.access_token',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
]

export interface LoggerOptions {
  level?: string
  /** Append lines to this file instead of stderr, as the Go sidecar's -logfile does. */
  file?: string
  name?: string
  /** json (default) or text (logrus-style). */
  format?: string
}

const LOGRUS_LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' }
/** pino's own members, shown as time/level/msg or dropped (the Go sidecars log no pid or host). */
const PINO_MEMBERS = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'name'])

/** A field's value as logrus prints it with DisableQuote: strings as they are, anything else as JSON. */
function logrusValue(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))
}

/**
 * One pino JSON line as logrus's TextFormatter writes it with the Go sidecars' settings
 * (DisableTimestamp, DisableQuote): `level=info msg=Starting /bin/remotefs...`, then the other
 * fields sorted by name, unquoted; an error as error=message. Written here because logfmt
 * libraries neither order nor name levels as logrus does, and all of them quote.
 */
export function logrusLine(json: string): string {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const parts: string[] = [`level=${LOGRUS_LEVELS[o.level as number] ?? String(o.level)}`]
  if (typeof o.msg === 'string' && o.msg !== '') parts.push(`msg=${o.msg}`)
  for (const key of Object.keys(o)
    .filter((k) => !PINO_MEMBERS.has(k))
    .sort()) {
    const v = o[key]
    if (key === 'err' && typeof v === 'object' && v !== null) {
      const e = v as { message?: string; code?: string }
      parts.push(`error=${e.code ? `${e.message ?? ''} [${e.code}]` : (e.message ?? '')}`)
    } else parts.push(`${key}=${logrusValue(v)}`)
  }
  return `${parts.join(' ')}\n`
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = parseLogFormat(options.format ?? 'json')
  const destination = options.file ? pino.destination({ dest: options.file, append: true, mkdir: true, sync: true }) : pino.destination({ fd: 2, sync: true })
  // Credentials in URLs and messages can sit anywhere in a line (an error's stack, a nested
  // field): the finished JSON line is redacted as a whole, before it is formatted.
  const stream: DestinationStream =
    format === 'text' ? { write: (line: string) => destination.write(logrusLine(redactSecrets(line))) } : { write: (line: string) => destination.write(redactSecrets(line)) }
  return pino(
    {
      name: options.name ?? 'encfs',
      level: pinoLevel(options.level ?? 'warning'),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    stream,
  )
}

export const silentLogger: Logger = pino({ level: 'silent' })
