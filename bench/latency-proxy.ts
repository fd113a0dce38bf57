// The storage-latency profile's proxy, in a process of its own so that its CPU is neither the
// bench's (where the raw clients run) nor remotefs's: `node dist/bench/latency-proxy.js
// --target-port N --delay-ms 10 --mib-per-second 60` prints {"port": P} and proxies until SIGTERM.
import yargs from 'yargs'
import { startTcpProxy } from '../test/helpers/tcp-proxy.js'

const args = yargs(process.argv.slice(2))
  .option('target-port', { type: 'number', demandOption: true })
  .option('delay-ms', { type: 'number', default: 10 })
  .option('mib-per-second', { type: 'number', default: 60 })
  .strict()
  .parseSync()

const proxy = await startTcpProxy(args['target-port'], { requestDelayMs: args['delay-ms'], bytesPerSecond: args['mib-per-second'] * 1024 * 1024 })
process.stdout.write(`${JSON.stringify({ port: proxy.port })}\n`)
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void proxy.stop().then(() => process.exit(0)))
