// The layers of src/ (docs/architecture.md#layers): foundations below the domains, and no import
// cycle between folders (nor between files). Read from the sources' import lines.
import test from 'ava'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const src = path.join(root, 'src')

/** The foundation folders: they may import each other (without cycles), never a domain folder. */
const FOUNDATIONS = ['errors', 'log', 'encoding', 'retry', 'process', 'identity', 'http']

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : []
  })
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** file (relative to src) -> the files it imports (relative to src). */
function fileGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>()
  for (const file of sources(src)) {
    const from = path.relative(src, file)
    const to = new Set<string>()
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!
      if (!spec.startsWith('.')) continue
      to.add(path.relative(src, path.resolve(path.dirname(file), spec)).replace(/\.js$/, '.ts'))
    }
    graph.set(from, to)
  }
  return graph
}

const folderOf = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.')

/** One cycle through the graph if there is one, as the list of its nodes (first = last). */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (node: string): string[] | undefined => {
    state.set(node, 'open')
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next]
      if (!state.has(next)) {
        const found = visit(next)
        if (found) return found
      }
    }
    stack.pop()
    state.set(node, 'done')
    return undefined
  }
  for (const node of [...graph.keys()].sort()) {
    if (state.has(node)) continue
    const found = visit(node)
    if (found) return found
  }
  return undefined
}

const files = fileGraph()
const folderEdges = new Map<string, Map<string, string[]>>()
for (const [from, tos] of files) {
  for (const to of tos) {
    const a = folderOf(from)
    const b = folderOf(to)
    if (a === b) continue
    const out = folderEdges.get(a) ?? new Map<string, string[]>()
    out.set(b, [...(out.get(b) ?? []), `${from} imports ${to}`])
    folderEdges.set(a, out)
  }
}
const folders = new Map([...folderEdges].map(([a, out]) => [a, new Set(out.keys())]))

test('the sources were read', (t) => {
  t.true(files.size > 100, `${files.size} files under src/`)
  for (const f of FOUNDATIONS)
    t.true(
      [...files.keys()].some((file) => folderOf(file) === f),
      `src/${f}/ exists`,
    )
})

test('no import cycle between folders', (t) => {
  const cycle = findCycle(folders)
  const why = cycle?.slice(1).map((to, i) => `  ${cycle[i]} -> ${to}: ${folderEdges.get(cycle[i]!)!.get(to)!.join(', ')}`)
  t.is(cycle, undefined, cycle ? `folder cycle ${cycle.join(' -> ')}\n${why!.join('\n')}` : '')
})

test('no import cycle between files', (t) => {
  const cycle = findCycle(files)
  t.is(cycle, undefined, cycle ? `file cycle ${cycle.join(' -> ')}` : '')
})

test('the foundations import nothing from the domains', (t) => {
  const upward = FOUNDATIONS.flatMap((f) => [...(folderEdges.get(f) ?? [])].filter(([to]) => !FOUNDATIONS.includes(to)).flatMap(([, why]) => why))
  t.deepEqual(upward, [], `foundation folders (${FOUNDATIONS.join(', ')}) importing domain code:\n${upward.join('\n')}`)
})

test('src/ imports nothing from test/ or bench/ (test fixtures stay out of the product)', (t) => {
  const outside = [...files].flatMap(([from, tos]) => [...tos].filter((to) => to.startsWith('..')).map((to) => `${from} imports ${to}`))
  t.deepEqual(outside, [], outside.join('\n'))
})

test("README's layout and docs/architecture.md's table name every folder of src/", (t) => {
  const folders = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
  const layout = readme.slice(readme.indexOf('- Layout:'), readme.indexOf('\n## ', readme.indexOf('- Layout:')))
  const table = readFileSync(path.join(root, 'docs', 'architecture.md'), 'utf8').split('<a id="source-layout"></a>')[1] ?? ''
  for (const f of folders) {
    t.true(layout.includes(`\`${f}\``), `README's layout names src/${f}/`)
    t.true(table.includes(`\`src/${f}/\``), `docs/architecture.md#source-layout names src/${f}/`)
  }
})
