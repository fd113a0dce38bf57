import type { Argv } from 'yargs'
import { runDemo } from '../demo/run-demo.js'

/** `encfs demo`: the local stack in one command. */
export function demoCommand<T extends { loglevel: string }>(y: Argv<T>): Argv<T> {
  return y.command(
    'demo',
    'local end to end: Azurite + an encrypted image made on the fly + remotefs mounting it; prints its files',
    (y) =>
      y
        .option('once', { type: 'boolean', default: false, describe: 'exit after printing instead of serving until Ctrl-C' })
        .option('keep', { type: 'boolean', default: false, describe: 'keep the work directory (image, key, logs)' }),
    async (args) => {
      await runDemo({ once: args.once, keep: args.keep, loglevel: args.loglevel })
    },
  )
}
