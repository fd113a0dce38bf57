// Reads what AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer wrote during
// npm run test:sanitize (scripts/test-sanitize.sh) and fails when any of it is ours: every memory
// error and undefined behaviour counts; a leak counts when its allocation stack passes through
// one of encfs's addons or a library only they use. Node does not free V8's heap at exit, so
// LeakSanitizer always lists V8 pages: those are not reports about this code.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'

/** Frames that make a leak ours: the three addons, and libfuse3 and libcurl, which only they load. */
export const OUR_MODULES = /encfs_fuse3\.node|encfs_http\.node|encfs_snp_crypto\.node|libfuse3\.so|libcurl\.so/

/** The reports in one sanitizer log that concern encfs's native code, each as the text to show. */
export function ourReports(log: string): string[] {
  const found: string[] = []
  for (const report of log.split(/^={20,}$/m)) {
    if (/ERROR: LeakSanitizer/.test(report)) {
      for (const leak of report.split(/^(?=(?:Direct|Indirect) leak of)/m).slice(1)) if (OUR_MODULES.test(leak)) found.push(leak.trim())
    } else if (/ERROR: AddressSanitizer|WARNING: AddressSanitizer|runtime error:/.test(report)) {
      // (UndefinedBehaviorSanitizer writes its reports without the separator line: one chunk.)
      found.push(report.trim())
    }
  }
  return found
}

async function main(dir: string): Promise<number> {
  const files = (await readdir(dir)).sort()
  let count = 0
  for (const file of files) {
    for (const report of ourReports(await readFile(path.join(dir, file), 'utf8'))) {
      count++
      process.stderr.write(`\n--- ${file} ---\n${report}\n`)
    }
  }
  process.stderr.write(`test:sanitize: ${files.length} sanitizer log(s), ${count} report(s) about encfs's native code\n`)
  return count === 0 ? 0 : 1
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2]
  if (!dir) {
    process.stderr.write('usage: node dist/scripts/sanitizer-reports.js <report directory>\n')
    process.exit(2)
  }
  process.exit(await main(dir))
}
