// The conformance suite (conformance.ts) on the test's own memory sources, which the other
// tests use as storage: they must keep the contract they stand in for.
import { MemorySource, WritableMemorySource } from '../helpers/memory-source.js'
import { Random } from '../helpers/random.js'
import { conformance } from './conformance.js'

const bytes = (n: number) => new Random(n).bytes(n)

conformance({
  name: 'MemorySource',
  open: async () => {
    const source = new MemorySource(bytes(3 * 1024 * 1024 + 4321))
    return { source, bytes: Buffer.from(source.bytes), closedBelow: () => source.closed }
  },
})

conformance({
  name: 'WritableMemorySource',
  writable: true,
  writeUnit: 512,
  open: async () => {
    const source = new WritableMemorySource(bytes(2 * 1024 * 1024))
    return { source, bytes: Buffer.from(source.bytes), closedBelow: () => source.closed, persisted: async () => Buffer.from(source.bytes) }
  },
})
