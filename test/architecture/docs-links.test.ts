// Comments and documents point into docs/ with anchors that exist, and nowhere outside the
// repository (no section signs into a spec, no design notes or shared folder beside it).
import test from 'ava'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) return []
    const p = path.join(dir, e.name)
    return e.isDirectory() ? files(p, ext) : ext.test(e.name) ? [p] : []
  })
}

/** Documents linked before they are written (none now). */
const PENDING = new Set<string>()

const anchorCache = new Map<string, Set<string>>()

/** The anchors of a markdown file: explicit <a id>, and the slugs GitHub gives its headings. */
function anchors(file: string): Set<string> {
  let set = anchorCache.get(file)
  if (!set) {
    const text = readFileSync(file, 'utf8')
    set = new Set([
      ...[...text.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]!),
      ...[...text.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\w\s-]/g, '')
          .replace(/\s/g, '-'),
      ),
    ])
    anchorCache.set(file, set)
  }
  return set
}

function broken(from: string, target: string): string | undefined {
  const [file, anchor] = target.split('#')
  if (PENDING.has(path.relative(root, file!))) return undefined
  if (!existsSync(file!)) return `${path.relative(root, from)}: ${path.relative(root, file!)} does not exist`
  if (anchor && file!.endsWith('.md') && !anchors(file!).has(anchor)) return `${path.relative(root, from)}: ${path.relative(root, file!)} has no anchor #${anchor}`
  return undefined
}

const sources = ['src', 'test', 'bench', 'scripts', 'native'].filter((d) => existsSync(path.join(root, d))).flatMap((d) => files(path.join(root, d), /\.(ts|cc|h|sh|gyp)$/))

test('docs/… pointers in the code name files and anchors that exist', (t) => {
  const problems: string[] = []
  let pointers = 0
  for (const file of sources) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?<![\w'"/.-])docs\/([\w-]+\.md)(#[\w-]+)?/g)) {
      pointers++
      const p = broken(file, path.join(root, 'docs', m[1]!) + (m[2] ?? ''))
      if (p) problems.push(p)
    }
  }
  t.true(pointers > 30, `${pointers} pointers`)
  t.deepEqual(problems, [])
})

test("markdown links between the repository's documents resolve, anchors included", (t) => {
  const problems: string[] = []
  const docs = [path.join(root, 'README.md'), ...files(path.join(root, 'docs'), /\.md$/), ...files(path.join(root, 'test'), /\.md$/)]
  for (const file of docs) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!
      if (/^[a-z]+:/.test(target)) continue
      const p = broken(file, target.startsWith('#') ? `${file}${target}` : path.join(path.dirname(file), target))
      if (p) problems.push(p)
    }
  }
  t.deepEqual(problems, [])
})

test('nothing points outside the repository: no spec sections, spec/luks2.md, DESIGN.md or the shared folder beside it', (t) => {
  const offending = [...sources, path.join(root, 'README.md'), ...files(path.join(root, 'docs'), /\.md$/)]
    .flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((line, i) => ({ file, line, i })),
    )
    .filter(({ line }) => /spec \u00a7|spec\/luks2|DESIGN\.md|\.\.\/shared|shared\/spec/.test(line))
    .filter(
      ({ file }) =>
        file !==
        fileURLToPath(import.meta.url)
          .replace(/\/dist\/test\//, '/test/')
          .replace(/\.js$/, '.ts'),
    )
    .map(({ file, i }) => `${path.relative(root, file)}:${i + 1}`)
  t.deepEqual(offending, [])
})

test('source paths the documents name exist', (t) => {
  const docs = [path.join(root, 'README.md'), ...files(path.join(root, 'docs'), /\.md$/)]
  const missing = docs.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/\b((?:src|test|bench|scripts)\/[\w/.-]+\.ts)\b/g)]
      .map((m) => m[1]!)
      .filter((p) => !existsSync(path.join(root, p)))
      .map((p) => `${path.relative(root, file)}: ${p}`),
  )
  t.deepEqual(missing, [])
})
