import yargs from 'yargs'
import { logOptions, parseLogLevel, parseLogFormat } from '../log/logger.js'
import { exitWith, usageFailure, UsageError } from './fail.js'
import { inspectCommand, checkKeyCommand } from './image-commands.js'
import { demoCommand } from './demo-command.js'
import { reportCommand } from './report-command.js'
import { releaseCommand } from './release-command.js'
import { emulatorsCommand } from './emulators-command.js'
import { serveCommand } from './serve-command.js'
import { toolsCommands } from './tools-commands.js'
import { importKeyCommand } from './import-key-command.js'
import { wrapCommand } from './wrap-command.js'
import { verityCommands } from './verity-commands.js'
import { attestationCommand } from './attestation-command.js'

export async function main(argv: string[]): Promise<void> {
  const cli = yargs(argv)
    .scriptName('encfs')
    .usage('$0 <command> [options]')
    // Single-dash long flags as the Go tools take them (-loglevel, -c, -kh, -out=true).
    .parserConfiguration({ 'short-option-groups': false })
    .options(logOptions())
    .global(['loglevel', 'logfile', 'logformat'])
    .middleware((argv) => {
      // A bad level ends as Go's logrus.Fatalf does (LOG_LEVEL_INVALID, exit 1), before any command runs.
      parseLogLevel(String(argv.loglevel))
      try {
        parseLogFormat(String(argv.logformat))
      } catch (err) {
        throw UsageError.of(err)
      }
    })
  inspectCommand(cli)
  checkKeyCommand(cli)
  demoCommand(cli)
  reportCommand(cli)
  releaseCommand(cli)
  emulatorsCommand(cli)
  serveCommand(cli)
  toolsCommands(cli)
  importKeyCommand(cli)
  wrapCommand(cli)
  verityCommands(cli)
  attestationCommand(cli)
  cli.demandCommand(1, 'name a command (encfs --help lists them)').strict().version(false).help().exitProcess(false).fail(usageFailure)
  try {
    await cli.parseAsync()
  } catch (err) {
    exitWith('encfs', err)
  }
}
