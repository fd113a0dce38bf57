import { createLogger, type Logger } from '../log/logger.js'
import { exitWith } from './fail.js'

/**
 * The logger for an `encfs` subcommand, from the global -loglevel / -logfile / -logformat options
 * (which the subcommand modules do not see in their types: they extend any yargs instance).
 */
export function commandLogger(args: object, name = 'encfs', defaultLevel?: string): Logger {
  const { loglevel, logfile, logformat } = args as { loglevel?: string; logfile?: string; logformat?: string }
  return createLogger({ level: loglevel ?? defaultLevel, file: logfile, name, format: logformat })
}

/**
 * A standalone program's command line and logger (remotefs, aasp), or undefined after --help; a
 * command line or log option it cannot use ends the process naming it (2 for the command line,
 * 1 for a log level, as Go).
 */
export function startProgram<A extends { help?: unknown; loglevel: string; logfile?: string; logformat: string }>(
  prog: string,
  parse: () => A,
): { args: A; logger: Logger } | undefined {
  try {
    const args = parse()
    if (args.help) return undefined
    return { args, logger: createLogger({ level: args.loglevel, file: args.logfile, format: args.logformat, name: prog }) }
  } catch (err) {
    exitWith(prog, err, 2)
  }
}
