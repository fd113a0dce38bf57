import { setMaxListeners } from 'node:events'
import { linkSignals } from '../retry/linked-signal.js'
import { StorageError } from './errors.js'

/**
 * How long write-backs may still go to storage once remotefs is stopping: long enough for what
 * ext4 and the cache hold at an orderly stop to land on storage that answers, short enough that
 * SIGTERM ends remotefs within 15 s on storage that does not (README, "Stopping").
 */
export const STOP_WRITE_GRACE_MS = 5_000

/**
 * The end of a source's requests when remotefs stops. Reads in flight are aborted at once (the
 * FUSE requests waiting on them are answered EIO), since whoever reads is being stopped too, and
 * no read is sent any more; except on a writable source, where the unmount of ext4 may still need
 * to read a block while it writes, until the grace ends. Writes get STOP_WRITE_GRACE_MS more,
 * then the same.
 * Without it, a stalled server held SIGTERM for as long as its requests' retries (32 s for a
 * pending read, 57 s for the header read at start-up, minutes for a black-holed Put Page).
 */
export class StopGate {
  private readonly reads = new AbortController()
  private readonly writes = new AbortController()
  private graceTimer?: NodeJS.Timeout

  /** `signal`: the process's stop (remotefs aborts it on SIGTERM); `stop()` does the same by hand. */
  constructor(
    signal: AbortSignal | undefined,
    private readonly o: { writable: boolean; writeGraceMs?: number } = { writable: false },
  ) {
    // Every request in flight listens on them (a cold sequential read keeps dozens going): more than 10 is no leak.
    setMaxListeners(0, this.reads.signal, this.writes.signal)
    if (signal?.aborted) this.stop()
    else signal?.addEventListener('abort', () => this.stop(), { once: true })
  }

  get stopping(): boolean {
    return this.reads.signal.aborted
  }

  stop(): void {
    if (this.stopping) return
    this.reads.abort(stopped('reads', this.graceMs))
    this.graceTimer = setTimeout(() => this.writes.abort(stopped('writes', this.graceMs)), this.graceMs)
    this.graceTimer.unref()
  }

  private get graceMs(): number {
    return this.o.writeGraceMs ?? STOP_WRITE_GRACE_MS
  }

  /** The signal a read goes out with (the caller's and the stop's), to unlink() once it has settled; throws once no read may go out. */
  forRead(signal?: AbortSignal): { signal: AbortSignal; unlink(): void } {
    const stop = this.o.writable && this.stopping ? this.writes.signal : this.reads.signal
    stop.throwIfAborted()
    return linkSignals(signal, stop)
  }

  /** The signal a write goes out with, to unlink() once it has settled; throws once the grace after the stop has run out. */
  forWrite(signal?: AbortSignal): { signal: AbortSignal; unlink(): void } {
    this.writes.signal.throwIfAborted()
    return linkSignals(signal, this.writes.signal)
  }

  /** Ends everything still in flight (the source is closing). */
  close(): void {
    this.stop()
    clearTimeout(this.graceTimer)
    if (!this.writes.signal.aborted) this.writes.abort(stopped('writes', this.graceMs))
  }
}

function stopped(what: 'reads' | 'writes', graceMs: number): StorageError {
  return new StorageError(
    'STORAGE_ABORTED',
    what === 'reads' ? 'remotefs is stopping: storage reads are no longer sent' : `remotefs is stopping: write-backs had ${graceMs / 1000} s and are no longer sent`,
  )
}
