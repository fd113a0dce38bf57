/**
 * The part of Azure Attestation's policy language the MAA emulator understands
 * (docs/attestation-policy.md#emulator-language): `version=1.x;`, the sections
 * `configurationrules`, `authorizationrules` and `issuancerules`, and claim rules
 * `c:[type=="…", value>=…, issuer=="…"] && [...] => action(...);` with the actions permit(),
 * deny(), add(), issue() and issueproperty(). Anything else is a syntax error that names it.
 */

export type Literal = string | number | boolean
export type Comparison = '==' | '!=' | '<' | '<=' | '>' | '>='
export type ClaimProperty = 'type' | 'value' | 'issuer' | 'valueType'

/** A property of another condition's matched claim: `c.value`. */
export interface Reference {
  ref: string
  property: ClaimProperty
}

export interface PropertyCondition {
  property: ClaimProperty
  op: Comparison
  operand: Literal | Reference
}

export interface Condition {
  /** The identifier its matched claim is known by in the rule (`c` of `c:[...]`). */
  id?: string
  properties: PropertyCondition[]
}

export type Verb = 'permit' | 'deny' | 'add' | 'issue' | 'issueproperty'

export interface Action {
  verb: Verb
  /** add/issue/issueproperty: a new claim, or a matched one re-issued (`claim=c`). */
  claim?: { type: string; value: Literal | Reference } | { ref: string }
}

export interface Rule {
  line: number
  conditions: Condition[]
  action: Action
}

export interface Policy {
  version: string
  configuration: Rule[]
  authorization: Rule[]
  issuance: Rule[]
}

export class PolicySyntaxError extends Error {}

interface Token {
  kind: 'word' | 'string' | 'number' | 'op'
  text: string
  line: number
}

const QUOTES = '"\u201c\u201d'

/** Words, strings (Microsoft's samples use typographic quotes too), numbers and operators; comments dropped. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let line = 1
  let i = 0
  while (i < text.length) {
    const ch = text[i]!
    if (ch === '\n') line++
    if (/\s/.test(ch)) i++
    else if (text.startsWith('//', i)) i = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i)
    else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2)
      if (end < 0) throw new PolicySyntaxError(`line ${line}: a comment that never ends`)
      line += text.slice(i, end).split('\n').length - 1
      i = end + 2
    } else if (QUOTES.includes(ch)) {
      let j = i + 1
      let value = ''
      while (j < text.length && !QUOTES.includes(text[j]!)) {
        const escaped = text[j] === '\\' && j + 1 < text.length
        value += escaped ? text[j + 1] : text[j]
        j += escaped ? 2 : 1
      }
      if (j >= text.length) throw new PolicySyntaxError(`line ${line}: a string that never ends`)
      tokens.push({ kind: 'string', text: value, line })
      i = j + 1
    } else {
      const m = /^(-?\d+(?:\.\d+)?|[A-Za-z_$][\w$-]*|==|!=|<=|>=|=>|&&|[<>=[\](){};:,.])/.exec(text.slice(i))
      if (!m) throw new PolicySyntaxError(`line ${line}: unexpected character ${JSON.stringify(ch)}`)
      tokens.push({ kind: /^-?\d/.test(m[1]!) ? 'number' : /^[A-Za-z_$]/.test(m[1]!) ? 'word' : 'op', text: m[1]!, line })
      i += m[1]!.length
    }
  }
  return tokens
}

class Parser {
  private at = 0
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.at]
  }

  private line(): number {
    return this.peek()?.line ?? this.tokens.at(-1)?.line ?? 1
  }

  fail(what: string): never {
    const t = this.peek()
    throw new PolicySyntaxError(`line ${this.line()}: expected ${what}, found ${t ? JSON.stringify(t.text) : 'the end of the policy'}`)
  }

  accept(text: string): boolean {
    if (this.peek()?.text.toLowerCase() === text.toLowerCase() && this.peek()?.kind !== 'string') {
      this.at++
      return true
    }
    return false
  }

  expect(text: string): void {
    if (!this.accept(text)) this.fail(JSON.stringify(text))
  }

  word(): string {
    const t = this.peek()
    if (t?.kind !== 'word') this.fail('a name')
    this.at++
    return t.text
  }

  /** The line of the next token, for messages about what starts there. */
  currentLine(): number {
    return this.line()
  }

  /** A version number as written (`1.0`, not the number 1). */
  version(): string {
    const t = this.peek()
    if (t?.kind !== 'number') return this.fail('a version number like 1.0')
    this.at++
    return t.text
  }

  done(): boolean {
    return this.at >= this.tokens.length
  }

  literal(): Literal | Reference {
    const t = this.peek()
    if (!t) return this.fail('a value')
    this.at++
    if (t.kind === 'string') return t.text
    if (t.kind === 'number') return Number(t.text)
    if (t.kind === 'word' && /^(true|false)$/i.test(t.text)) return t.text.toLowerCase() === 'true'
    if (t.kind === 'word' && this.accept('.')) return { ref: t.text, property: this.property() }
    this.at--
    return this.fail('a string, number, true, false or a reference like c.value')
  }

  property(): ClaimProperty {
    const name = this.word()
    const p = (['type', 'value', 'issuer', 'valueType'] as const).find((x) => x.toLowerCase() === name.toLowerCase())
    if (!p) throw new PolicySyntaxError(`line ${this.line()}: a claim has type, value, issuer and valueType, not ${name}`)
    return p
  }

  comparison(): Comparison {
    const t = this.peek()
    if (t && ['==', '!=', '<', '<=', '>', '>=', '='].includes(t.text) && t.kind === 'op') {
      this.at++
      // The published samples write `type="x"` inside conditions as well as `type=="x"`.
      return t.text === '=' ? '==' : (t.text as Comparison)
    }
    return this.fail('a comparison (==, !=, <, <=, >, >=)')
  }
}

function parseCondition(p: Parser): Condition {
  let id: string | undefined
  if (!p.accept('[')) {
    id = p.word()
    p.expect(':')
    p.expect('[')
  }
  const properties: PropertyCondition[] = []
  do {
    const property = p.property()
    properties.push({ property, op: p.comparison(), operand: p.literal() })
  } while (p.accept(','))
  p.expect(']')
  return { id, properties }
}

function parseAction(p: Parser): Action {
  const name = p.word().toLowerCase()
  const verb = (['permit', 'deny', 'add', 'issue', 'issueproperty'] as const).find((v) => v === name)
  if (!verb) throw new PolicySyntaxError(`action ${name}() is not one the emulator evaluates (permit, deny, add, issue, issueproperty)`)
  p.expect('(')
  if (verb === 'permit' || verb === 'deny') {
    p.expect(')')
    return { verb }
  }
  const args = new Map<string, Literal | Reference>()
  do {
    const key = p.word().toLowerCase()
    p.expect('=')
    if (key === 'claim') {
      args.set('claim', { ref: p.word(), property: 'value' })
      continue
    }
    if (key !== 'type' && key !== 'value') throw new PolicySyntaxError(`${verb}() takes type and value, or claim; not ${key}`)
    args.set(key, p.literal())
  } while (p.accept(','))
  p.expect(')')
  const claim = args.get('claim') as Reference | undefined
  if (claim) return { verb, claim: { ref: claim.ref } }
  const type = args.get('type')
  const value = args.get('value')
  if (typeof type !== 'string' || value === undefined) throw new PolicySyntaxError(`${verb}() needs type="<name>" and a value`)
  return { verb, claim: { type, value } }
}

/** References must name a condition before them in the same rule (`c` of `c:[...]`). */
function checkReferences(rule: Rule): void {
  const bound = new Set<string>()
  const need = (ref: string) => {
    if (!bound.has(ref)) throw new PolicySyntaxError(`line ${rule.line}: ${ref} is not the identifier of an earlier condition of this rule`)
  }
  for (const c of rule.conditions) {
    for (const p of c.properties) if (typeof p.operand === 'object') need(p.operand.ref)
    if (c.id) bound.add(c.id)
  }
  const claim = rule.action.claim
  if (claim && 'ref' in claim) need(claim.ref)
  else if (claim && typeof claim.value === 'object') need(claim.value.ref)
}

function parseRule(p: Parser, line: number): Rule {
  const conditions: Condition[] = []
  if (!p.accept('=>')) {
    do conditions.push(parseCondition(p))
    while (p.accept('&&'))
    p.expect('=>')
  }
  const rule = { line, conditions, action: parseAction(p) }
  // The grammar ends a rule with ';'; some published samples leave it out before the next rule or '}'.
  p.accept(';')
  checkReferences(rule)
  return rule
}

/** Which actions each section may take (the language's own rule: authorization decides, issuance adds to the token). */
const ALLOWED: Record<keyof Omit<Policy, 'version'>, Verb[]> = {
  configuration: ['issueproperty'],
  authorization: ['permit', 'deny', 'add'],
  issuance: ['add', 'issue', 'issueproperty'],
}

const SECTIONS = { configurationrules: 'configuration', authorizationrules: 'authorization', issuancerules: 'issuance' } as const

/** A policy's text as rules, or a PolicySyntaxError naming the line and what was expected. */
export function parsePolicy(text: string): Policy {
  const p = new Parser(tokenize(text))
  p.expect('version')
  p.expect('=')
  const version = p.version()
  if (!/^1(\.\d+)?$/.test(version)) throw new PolicySyntaxError(`version ${version}: the emulator evaluates policy versions 1.x`)
  p.expect(';')
  const policy: Policy = { version, configuration: [], authorization: [], issuance: [] }
  while (!p.done()) {
    const name = p.word().toLowerCase() as keyof typeof SECTIONS
    const section = SECTIONS[name]
    if (!section) throw new PolicySyntaxError(`a section named ${name}: expected authorizationrules, issuancerules or configurationrules`)
    p.expect('{')
    while (!p.accept('}')) {
      const rule = parseRule(p, p.currentLine())
      if (!ALLOWED[section].includes(rule.action.verb))
        throw new PolicySyntaxError(`line ${rule.line}: ${rule.action.verb}() is not allowed in ${name} (only ${ALLOWED[section].join(', ')})`)
      policy[section].push(rule)
    }
    p.expect(';')
  }
  return policy
}
