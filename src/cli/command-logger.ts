import { createLogger, type Logger } from '../log/logger.js'

/**
 * The logger for an `encfs` subcommand, from the global -loglevel / -logfile / -logformat options
 * (which the subcommand modules do not see in their types: they extend any yargs instance).
 */
export function commandLogger(args: object, name = 'encfs', defaultLevel?: string): Logger {
  const { loglevel, logfile, logformat } = args as { loglevel?: string; logfile?: string; logformat?: string }
  return createLogger({ level: loglevel ?? defaultLevel, file: logfile, name, format: logformat })
}
