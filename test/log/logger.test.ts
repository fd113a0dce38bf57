// Log levels and the text format as users of the Go sidecars (logrus) know them.
import test from 'ava'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { createLogger, parseLogLevel, pinoLevel } from '../../src/log/logger.js'

test('levels are read as logrus.ParseLevel reads them: any case, warn = warning', (t) => {
  for (const [given, level] of [
    ['Info', 'info'],
    ['WARN', 'warning'],
    ['warn', 'warning'],
    ['Warning', 'warning'],
    ['TRACE', 'trace'],
    ['Panic', 'panic'],
    ['error', 'error'],
  ] as const) {
    t.is(parseLogLevel(given), level, given)
  }
  t.is(pinoLevel('Warn'), 'warn')
  t.is(pinoLevel('PANIC'), 'fatal')
  const err = t.throws(() => parseLogLevel('verbose'))
  t.is((err as { code?: string }).code, 'LOG_LEVEL_INVALID')
  t.regex(err!.message, /-loglevel "verbose" is not a log level: use trace, debug, info, warning/)
})

test('-logformat text writes logrus TextFormatter lines as the Go sidecars configure it: no time, no quoting, level, msg, sorted fields, no secrets', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-log-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'log.txt')
  const logger = createLogger({ level: 'Info', file, format: 'text', name: 'remotefs' })
  logger.info('Starting /bin/remotefs...')
  logger.info({ zeta: 'z', alpha: 3, url: 'https://x/y?a=b c', token: 'secret-token' }, 'mounting filesystem 0')
  logger.warn('ready')
  logger.debug('not shown at info')
  logger.error({ err: Object.assign(new Error('the port is in use'), { code: 'API_LISTEN_FAILED' }) }, 'API unavailable')
  logger.fatal('Failed to mount filesystems: failed to mount filesystem index 0: input/output error')
  const lines = (await readFile(file, 'utf8')).trimEnd().split('\n')
  // What Go's logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true} prints, byte for byte.
  t.deepEqual(lines, [
    'level=info msg=Starting /bin/remotefs...',
    'level=info msg=mounting filesystem 0 alpha=3 token=[redacted] url=https://x/y?a=b c zeta=z',
    'level=warning msg=ready',
    'level=error msg=API unavailable error=the port is in use [API_LISTEN_FAILED]',
    'level=fatal msg=Failed to mount filesystems: failed to mount filesystem index 0: input/output error',
  ])
  t.false(lines.join('\n').includes('secret-token'))
})

test('JSON stays the default format', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-log-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'log.json')
  createLogger({ level: 'warning', file }).warn({ n: 1 }, 'hello')
  t.like(JSON.parse(await readFile(file, 'utf8')) as object, { level: 40, msg: 'hello', n: 1 })
})
