// The module hooks of loaded-modules.ts (they run on Node.js's loader thread).
import { appendFileSync } from 'node:fs'

type Next = (url: string, context: unknown) => Promise<unknown>

export async function load(url: string, context: unknown, next: Next): Promise<unknown> {
  appendFileSync(process.env.ENCFS_TEST_MODULE_LOG!, `${url}\n`)
  return next(url, context)
}
