// What npm run test:sanitize counts as a report about encfs's native code (scripts/sanitizer-reports.ts).
import test from 'ava'
import { ourReports } from '../../scripts/sanitizer-reports.js'

const SEP = '================================================================='

const leaks = (...stacks: string[]) =>
  `\n${SEP}\n==12==ERROR: LeakSanitizer: detected memory leaks\n\n${stacks.map((s) => `Direct leak of 64 byte(s) in 1 object(s) allocated from:\n${s}\n`).join('\n')}\nSUMMARY: AddressSanitizer: 128 byte(s) leaked in 2 allocation(s).\n`

test("a leak is ours when our code (or N-API for it, or libfuse3/libcurl) made the allocation; V8's heap is not, even grown by an addon's call", (t) => {
  const v8 = '    #0 0x7f in operator new(unsigned long)\n    #1 0x11a in v8::internal::MemoryChunk::MemoryChunk (/usr/bin/node+0x1166fb2)'
  const v8ThroughAddon = [
    '    #0 0x7f in operator new(unsigned long) ../../../../src/libsanitizer/asan/asan_new_delete.cpp:95',
    '    #1 0x10e in v8::internal::Heap_CombinedGenerationalAndSharedBarrierSlow (/usr/bin/node+0x10efaa1)',
    '    #5 0xc54 in napi_define_class (/usr/bin/node+0xc5480a)',
    '    #7 0x7f4 in encfs_http::Fetcher::Define(Napi::Env) (/tmp/x/native/http/build/Release/encfs_http.node+0x139dcd)',
  ].join('\n')
  const libfuse = '    #0 0x7f in realloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:85\n    #1 0x7f in fuse_opt_add_arg (/lib/x86_64-linux-gnu/libfuse3.so.3+0x1bb5a)'
  const event =
    '    #0 0x7f in operator new(unsigned long) ../../../../src/libsanitizer/asan/asan_new_delete.cpp:95\n    #1 0x7f in encfs_fuse3::Session::OnRead(fuse_req*, unsigned long, unsigned long, long, fuse_file_info*) ../fuse_ops.cc:214'
  const string = [
    '    #0 0x7f in operator new(unsigned long) ../../../../src/libsanitizer/asan/asan_new_delete.cpp:95',
    '    #1 0x7f in std::__cxx11::basic_string<char>::_M_mutate (/lib/x86_64-linux-gnu/libstdc++.so.6+0x14a1b4)',
    '    #2 0x7f in encfs_http::Fetcher::Start(Napi::CallbackInfo const&) ../fetcher.cc:180',
  ].join('\n')
  const reference = [
    '    #0 0x7f in operator new(unsigned long)',
    '    #1 0xc4 in v8impl::Reference::New (/usr/bin/node+0xc4a000)',
    '    #2 0xc4 in napi_create_reference (/usr/bin/node+0xc4b000)',
    '    #3 0x7f in Napi::Reference<Napi::Value>::New ../../../node-addon-api/napi-inl.h:3000',
  ].join('\n')
  // N-API's allocations for others: fuse-native's references, node's own module registration.
  const fuseNative =
    '    #0 0x7f in operator new(unsigned long)\n    #1 0xc5 in napi_create_reference (/usr/bin/node+0xc50f19)\n    #2 0x7f in fuse_native_mount (/x/node_modules/fuse-native/prebuilds/linux-x64/node.napi.node+0x31a6)'
  const registration = '    #0 0x7f in operator new(unsigned long)\n    #1 0xc6 in napi_module_register (/usr/bin/node+0xc6dba5)\n    #2 0x7f in call_init elf/dl-init.c:74'
  t.deepEqual(ourReports(leaks(v8, v8ThroughAddon, fuseNative, registration)), [])
  const found = ourReports(leaks(v8, libfuse, event, string, reference))
  t.is(found.length, 4)
  t.regex(found[0]!, /fuse_opt_add_arg/)
  t.regex(found[1]!, /Session::OnRead/)
  t.regex(found[2]!, /Fetcher::Start/)
  t.regex(found[3]!, /napi_create_reference/)
})

test('memory errors and undefined behaviour always count', (t) => {
  const uaf = `${SEP}\n==9==ERROR: AddressSanitizer: heap-use-after-free on address 0x6 at pc 0x7\n    #0 0x7 in fuse_reply_err (/lib/x86_64-linux-gnu/libfuse3.so.3+0x1)\nSUMMARY: AddressSanitizer: heap-use-after-free\n==9==ABORTING\n`
  t.is(ourReports(uaf).length, 1)
  t.is(ourReports('../fuse_ops.cc:71:13: runtime error: load of misaligned address 0x1 for type uint64_t\n').length, 1)
  t.deepEqual(ourReports(''), [])
})
