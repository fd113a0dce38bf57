// Request bodies as JSON schemas: fastify validates them before a handler runs.
import { GO_STD_BASE64_PATTERN as base64 } from '../encoding/base64.js'

const host = '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$'

export const runtimeDataBody = {
  type: 'object',
  required: ['runtime_data'],
  properties: { runtime_data: { type: 'string', minLength: 1, pattern: base64 } },
} as const

export const maaBody = {
  type: 'object',
  required: ['maa_endpoint', 'runtime_data'],
  properties: {
    maa_endpoint: { type: 'string', minLength: 1, pattern: host },
    runtime_data: { type: 'string', minLength: 1, pattern: base64 },
    // An encfs extension: the verified token's claims next to it. Without it, the answer is Go's.
    include_claims: { type: 'boolean' },
  },
} as const

export const releaseBody = {
  type: 'object',
  required: ['maa_endpoint', 'akv_endpoint', 'kid'],
  properties: {
    maa_endpoint: { type: 'string', minLength: 1, pattern: host },
    akv_endpoint: { type: 'string', minLength: 1, pattern: host },
    kid: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9-]+(/[0-9a-fA-F]+)?$' },
    access_token: { type: 'string' },
  },
} as const
