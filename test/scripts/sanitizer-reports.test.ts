// What npm run test:sanitize counts as a report about encfs's native code (scripts/sanitizer-reports.ts).
import test from 'ava'
import { ourReports } from '../../scripts/sanitizer-reports.js'

const SEP = '================================================================='

const leaks = (...stacks: string[]) =>
  `\n${SEP}\n==12==ERROR: LeakSanitizer: detected memory leaks\n\n${stacks.map((s) => `Direct leak of 64 byte(s) in 1 object(s) allocated from:\n${s}\n`).join('\n')}\nSUMMARY: AddressSanitizer: 128 byte(s) leaked in 2 allocation(s).\n`

test("leaks count only through encfs's addons or the libraries only they load; V8's heap does not", (t) => {
  const v8 = '    #0 0x7f in operator new(unsigned long)\n    #1 0x11a in v8::internal::MemoryChunk::MemoryChunk (/usr/bin/node+0x1166fb2)'
  const ours = '    #0 0x7f in realloc\n    #1 0x7f in fuse_opt_add_arg (/lib/x86_64-linux-gnu/libfuse3.so.3+0x1bb5a)'
  const addon = '    #0 0x7f in operator new(unsigned long)\n    #1 0x7f in encfs_http::Fetcher::Start (/tmp/x/native/http/build/Release/encfs_http.node+0x1234)'
  t.deepEqual(ourReports(leaks(v8)), [])
  const found = ourReports(leaks(v8, ours, addon))
  t.is(found.length, 2)
  t.regex(found[0]!, /fuse_opt_add_arg/)
  t.regex(found[1]!, /encfs_http\.node/)
})

test('memory errors and undefined behaviour always count', (t) => {
  const uaf = `${SEP}\n==9==ERROR: AddressSanitizer: heap-use-after-free on address 0x6 at pc 0x7\n    #0 0x7 in fuse_reply_err (/lib/x86_64-linux-gnu/libfuse3.so.3+0x1)\nSUMMARY: AddressSanitizer: heap-use-after-free\n==9==ABORTING\n`
  t.is(ourReports(uaf).length, 1)
  t.is(ourReports('../fuse_ops.cc:71:13: runtime error: load of misaligned address 0x1 for type uint64_t\n').length, 1)
  t.deepEqual(ourReports(''), [])
})
