import { open } from 'node:fs/promises'
import { constants } from 'node:fs'

/**
 * A small file's bytes, refused when it is not a regular file or is larger than `maxBytes`:
 * the paths come from key-info files and command lines, and a path naming /dev/zero or a FIFO
 * made readFile grow without end (4.8 GB in 12 s) or block. Throws `fail(reason)`.
 */
export async function readSmallFile(file: string, maxBytes: number, fail: (reason: string, cause?: unknown) => Error): Promise<Buffer> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below refuses it.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw fail(err.code ?? err.message, err)
  })
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw fail(`not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a device or socket'})`)
    if (st.size > maxBytes) throw fail(`${st.size} bytes, more than the ${maxBytes} such a file can hold`)
    // Read at most maxBytes + 1 whatever the size said: a file that grows is refused too.
    const buf = Buffer.alloc(maxBytes + 1)
    let n = 0
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n)
      if (bytesRead === 0) break
      n += bytesRead
      if (n > maxBytes) throw fail(`more than the ${maxBytes} bytes such a file can hold`)
    }
    return buf.subarray(0, n)
  } finally {
    await handle.close()
  }
}
