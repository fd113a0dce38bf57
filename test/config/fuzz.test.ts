// Property-based fuzzing of the configuration: whatever EncfsSideCarArgs holds, loading and
// planning end in a configuration or an EncfsError with a code (CONFIG_*), never a TypeError.
// Replay a failure with FUZZ_SEED=<seed>.
import test from 'ava'
import fc from 'fast-check'
import { loadConfig, redactConfig, configSecrets } from '../../src/config/load.js'
import { planFilesystems } from '../../src/config/plan.js'
import { validateSkrConfig } from '../../src/config/validate.js'
import { EncfsError } from '../../src/errors/encfs-error.js'
import { fuzzParameters, mutate, mutation } from '../helpers/fuzz.js'
import { sampleJson, b64json } from './fixtures.js'

function expectCodedRefusal(err: unknown): void {
  if (!(err instanceof EncfsError) || !/^CONFIG_[A-Z0-9_]+$/.test(err.code)) throw new Error(`not a configuration error with a code: ${String((err as Error).stack ?? err)}`)
}

/** Loads, redacts and plans, as remotefs does; returns normally or with a coded refusal. */
function load(b64: string, allowRawKey: boolean): void {
  try {
    const { config } = loadConfig({ base64: b64, env: {} })
    redactConfig(config)
    configSecrets(config)
    planFilesystems(config, { allowRawKey })
  } catch (err) {
    expectCodedRefusal(err)
  }
}

const samples = ['remotefs-readme-sample.json', 'encfs-sidecar-args.template.json'].map((n) => sampleJson(n))

test('any text as EncfsSideCarArgs: a configuration or a coded refusal', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.base64String(), fc.string({ unit: 'binary' })), fc.boolean(), (text, raw) => load(text, raw)),
    fuzzParameters(400),
  )
  t.pass()
})

test('any JSON, base64-encoded: a configuration or a coded refusal', (t) => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), fc.boolean(), (json, raw) => load(b64json(json), raw)),
    fuzzParameters(400),
  )
  t.pass()
})

test('mutations of real configurations: a configuration or a coded refusal', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...samples), fc.array(mutation, { minLength: 1, maxLength: 5 }), fc.boolean(), (sample, ms, raw) => load(b64json(mutate(sample, ms)), raw)),
    fuzzParameters(600),
  )
  t.pass()
})

test('the skr configuration (encfs serve): a configuration or a coded refusal', (t) => {
  const skr = sampleJson('skr-sidecar-args.kata-sample.json')
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue({ maxDepth: 3 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => mutate(skr, ms)),
      ),
      (json) => {
        try {
          validateSkrConfig(json)
        } catch (err) {
          expectCodedRefusal(err)
        }
      },
    ),
    fuzzParameters(300),
  )
  t.pass()
})
