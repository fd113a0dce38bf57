import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Reader, isObject } from '../encoding/go-json.js'

/** What a content-type parser calls back with (Fastify's shape). */
type Done = (err: Error | null, body?: unknown) => void

/**
 * Request bodies as Go skr's gin reads them (c.ShouldBindJSON): JSON whatever the Content-Type
 * says (curl -d sends a form type, Go's own maa-test example sends none), so one parser takes
 * every type. Parsing stays Fastify's secure parser (prototype poisoning refused); its errors
 * become `fail(message)`, a message that never quotes the body (it may carry an access token).
 */
export function parseAnyBodyAsJson(app: FastifyInstance, fail: (message: string) => Error): void {
  const secure = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (req: FastifyRequest, body: string | Buffer, done: Done) => {
    const text = body.toString()
    if (text.trim() === '') return done(fail('invalid request: the body is empty; send a JSON object'))
    void secure(req, text, (err: Error | null, value?: unknown) => {
      if (!err) return done(null, value)
      let why = 'it sets __proto__ or constructor.prototype'
      try {
        JSON.parse(text)
      } catch (e) {
        // V8 quotes the text around a syntax error: keep only what does not quote the body.
        why = (e as Error).message.replace(/,\s*(\.\.\.)?"[\s\S]*"(\.\.\.)?\s+is not valid JSON$/, '')
      }
      done(fail(`invalid request: the body is not valid JSON (${why})`))
    })
  })
}

/**
 * Member names as Go's encoding/json binds them: any letter case (an exact match wins), unknown
 * members ignored. Returns a body with only the schema's members, under their own names, so the
 * schema validates what Go would have bound.
 */
export function bindLikeGo(names: readonly string[]): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    const body = req.body
    if (!isObject(body)) return
    const r = new Reader()
    const bound: Record<string, unknown> = {}
    for (const name of names) {
      const value = r.member(body, name)
      if (value !== undefined) bound[name] = value
    }
    req.body = bound
  }
}
