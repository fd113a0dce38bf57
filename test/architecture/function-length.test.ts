// No function in src/ longer than 100 lines: a long function is steps without names. Measured on
// the compiled JavaScript (acorn finds the functions) and mapped back to the TypeScript lines
// through the source maps, so the count is the one an editor shows.
import test from 'ava'
import { readdirSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, type Node } from 'acorn'

const MAX_LINES = 100
const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src')

function compiled(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? compiled(p) : e.name.endsWith('.js') ? [p] : []
  })
}

interface Found {
  file: string
  name: string
  line: number
  lines: number
}

function longFunctions(js: string): Found[] {
  const map = new SourceMap(JSON.parse(readFileSync(`${js}.map`, 'utf8')))
  const file = path.relative(dist, js).replace(/\.js$/, '.ts')
  const original = (line: number, column: number): number | undefined => {
    const entry = map.findEntry(line - 1, column) as { originalLine?: number }
    return entry.originalLine
  }
  const found: Found[] = []
  const visit = (node: Node, name: string): void => {
    if (node.type === 'FunctionDeclaration' || node.type === 'FunctionExpression' || node.type === 'ArrowFunctionExpression') {
      const start = original(node.loc!.start.line, node.loc!.start.column)
      const end = original(node.loc!.end.line, Math.max(0, node.loc!.end.column - 1))
      if (start !== undefined && end !== undefined) found.push({ file, name, line: start + 1, lines: end - start + 1 })
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'loc') continue
      const children = Array.isArray(value) ? value : [value]
      for (const child of children) {
        if (!child || typeof child !== 'object' || typeof (child as Node).type !== 'string') continue
        visit(child as Node, nameOf(node, child as Node) ?? name)
      }
    }
  }
  visit(parse(readFileSync(js, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module', locations: true }), '(module)')
  return found.filter((f) => f.lines > MAX_LINES)
}

/** A readable name for a function found under `parent`. */
function nameOf(parent: Node, child: Node): string | undefined {
  const p = parent as Node & { id?: { name?: string }; key?: { name?: string; value?: string } }
  if (parent.type === 'VariableDeclarator' || parent.type === 'FunctionDeclaration' || parent.type === 'ClassDeclaration') return p.id?.name
  if (parent.type === 'MethodDefinition' || parent.type === 'Property' || parent.type === 'PropertyDefinition') return p.key?.name ?? p.key?.value
  if (child.type === 'FunctionDeclaration') return (child as Node & { id?: { name?: string } }).id?.name
  return undefined
}

test(`no function in src/ is longer than ${MAX_LINES} lines`, (t) => {
  const files = compiled(dist)
  t.true(files.length > 100, `${files.length} compiled files under ${dist}`)
  const over = files.flatMap(longFunctions)
  t.deepEqual(
    over.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`),
    [],
    'split these where a step has a name',
  )
})
