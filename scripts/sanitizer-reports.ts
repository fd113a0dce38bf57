// Reads what AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer wrote during
// npm run test:sanitize (scripts/test-sanitize.sh) and fails when any of it is ours: every memory
// error and undefined behaviour counts; a leak counts when the allocation was made by encfs's
// addons (leakIsOurs). Node does not free V8's heap at exit, so LeakSanitizer always lists V8's
// pages, also those an addon's call into JavaScript made: those are not reports about this code.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'

/** Modules only encfs's addons load: the four addons themselves, and libfuse3, libcurl and tpm2-tss. */
export const OUR_MODULES = /encfs_fuse3\.node|encfs_http\.node|encfs_snp_crypto\.node|encfs_tpm\.node|libfuse3\.so|libcurl\.so|libtss2-[a-z]+\.so/

/**
 * Whose allocation a leak is, from the frames above the allocator: our addons' code (a source line
 * built here, or one of OUR_MODULES), or N-API's bookkeeping (napi_*, v8impl::, a reference never
 * deleted, say) when what called N-API is our code; else node and V8 themselves (their heap, even
 * grown by an addon's call into JavaScript) or another addon (fuse-native). The C and C++ runtimes
 * decide nothing: they allocate for whoever called them.
 */
export function leakIsOurs(leak: string): boolean {
  let viaNapi = false
  for (const frame of leak
    .split('\n')
    .filter((l) => /^\s*#\d+ /.test(l))
    .slice(1)) {
    if (/libsanitizer|libstdc\+\+|libc\.so|libc_start|\/nptl\/|\/libio\//.test(frame)) continue
    // A symbolised frame with a C++ source line is in code built here: an addon's, or node-addon-api's inlined into it.
    if (OUR_MODULES.test(frame) || / \.{0,2}[\w./-]*\.(cc|h|hpp|cpp):\d+/.test(frame)) return true
    if (/ in (napi_|v8impl::)/.test(frame)) viaNapi = true
    else if (!(viaNapi && /\/usr\/bin\/node\+/.test(frame))) return false
  }
  return false
}

/** The reports in one sanitizer log that concern encfs's native code, each as the text to show. */
export function ourReports(log: string): string[] {
  const found: string[] = []
  for (const report of log.split(/^={20,}$/m)) {
    if (/ERROR: LeakSanitizer/.test(report)) {
      for (const leak of report.split(/^(?=(?:Direct|Indirect) leak of)/m).slice(1)) if (leakIsOurs(leak)) found.push(leak.trim())
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
