// Go's encoding/json matches member names case-insensitively (an exact match wins) and ignores
// unknown members, but fails on wrong types. No schema library does the first; this does, and
// records every problem with its JSON path instead of stopping at the first.

export type JsonObject = Record<string, unknown>

/** One problem found reading a document. */
export interface JsonIssue {
  /** JSON path of the offending member, e.g. `azure_filesystems[1].mount_point`. */
  path: string
  message: string
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'object') return 'an object'
  return `a ${typeof v}`
}

export class Reader {
  readonly issues: JsonIssue[] = []
  /** What is accepted, as Go accepts it, but deserves a word to the operator. */
  readonly warnings: JsonIssue[] = []

  add(path: string, message: string): void {
    this.issues.push({ path, message })
  }

  warn(path: string, message: string): void {
    this.warnings.push({ path, message })
  }

  /** The member Go would bind to `name`. */
  member(obj: JsonObject, name: string): unknown {
    if (Object.hasOwn(obj, name)) return obj[name]
    const lower = name.toLowerCase()
    const key = Object.keys(obj).find((k) => k.toLowerCase() === lower)
    return key === undefined ? undefined : obj[key]
  }

  object(obj: JsonObject, name: string, path: string): JsonObject | undefined {
    const v = this.member(obj, name)
    if (v === undefined || v === null) return undefined
    if (!isObject(v)) {
      this.add(path, `must be an object, got ${typeName(v)}`)
      return undefined
    }
    return v
  }

  string(obj: JsonObject, name: string, path: string): string | undefined {
    const v = this.member(obj, name)
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') {
      this.add(path, `must be a string, got ${typeName(v)}`)
      return undefined
    }
    return v
  }

  boolean(obj: JsonObject, name: string, path: string): boolean {
    const v = this.member(obj, name)
    if (v === undefined || v === null) return false
    if (typeof v !== 'boolean') {
      this.add(path, `must be true or false, got ${typeName(v)}`)
      return false
    }
    return v
  }

  integer(obj: JsonObject, name: string, path: string, min: number, max: number): number | undefined {
    const v = this.member(obj, name)
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.add(path, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`)
      return undefined
    }
    return v
  }

  oneOf<T extends string>(obj: JsonObject, name: string, path: string, allowed: readonly T[]): T | undefined {
    const v = this.string(obj, name, path)
    if (v === undefined) return undefined
    if (!(allowed as readonly string[]).includes(v)) {
      this.add(path, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`)
      return undefined
    }
    return v as T
  }

  stringArray(obj: JsonObject, name: string, path: string): string[] | undefined {
    const v = this.member(obj, name)
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      this.add(path, 'must be an array of strings')
      return undefined
    }
    return v as string[]
  }
}

/**
 * JSON as Go's encoding/json writes it: compact, members in the order given, and <, >, &,
 * U+2028 and U+2029 escaped (json.Marshal's HTML-safe default).
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
