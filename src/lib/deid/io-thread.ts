import { ANONYMIZER_STYLE, type FileIo, type FileThread, type FileThreadOptions, fileThread, localIo } from '../dicom/file-thread.js';

/**
 * The anonymizer's file I/O thread is the DICOM core's file thread (dicom/file-thread.ts):
 * inputs read into shared buffers and outputs published there with the core's publish steps
 * (temp name, write, fdatasync on the thread pool when fsync is on, rename, coalesced folder
 * sync; a vanished output folder made again), the calling thread doing the work until the
 * thread has started and if it dies.
 */
export type ThreadIoOptions = Omit<FileThreadOptions, 'style'>;

/** A file thread publishing in the anonymizer's way, started at the second request (or now with `eager`). */
export function threadIo(o: ThreadIoOptions = {}): FileThread {
  return fileThread({ ...o, style: ANONYMIZER_STYLE });
}

/**
 * The anonymizer's I/O with one anonymizing thread: outputs published in the file thread
 * (started now, so that its start-up overlaps the calling thread's), inputs read there
 * while it keeps up, and in the calling thread while outputs wait in its queue.
 *
 * Why: a read (open, one pread of ~130 KB, close) costs 30-90 us; creating an output on a
 * busy ext4 without a journal costs the file thread 0.3-0.9 ms (docs/fiona-anonymize.md).
 * There the file thread is the slower of the two, and a read sent to it waited behind the
 * outputs queued before it while the calling thread, with nothing else in hand, sat idle:
 * a CPU profile of 1,000 files showed 330 ms of the calling thread's 1.29 s idle, and as
 * much of the file thread's. Where creating is cheap (tmpfs, a journalled file system) the
 * calling thread's JavaScript is the slower part, and reading in the file thread spares it.
 */
export function publishingThreadIo(o: ThreadIoOptions = {}): FileIo & Pick<FileThread, 'ready'> {
  const thread = threadIo({ ...o, eager: true, sendAt: SEND_AT });
  const local = localIo(ANONYMIZER_STYLE);
  let queued = 0;
  return {
    readHead: (r, pool) => (queued >= READ_HERE_AT ? local.readHead(r, pool) : thread.readHead(r, pool)),
    write: async (job) => {
      queued++;
      try {
        return await thread.write(job);
      } finally {
        queued--;
      }
    },
    close: () => thread.close(),
    ready: () => thread.ready(),
  };
}

/** Outputs waiting in the file thread from which the calling thread reads its inputs itself. */
const READ_HERE_AT = 4;

/**
 * Requests go to the thread as soon as this many wait, not only at the end of the event-loop
 * turn: the calling thread renders many files in one turn (their reads are local or already
 * answered), and the file thread, given its outputs only then, sat idle meanwhile, then had
 * a burst to publish while the calling thread waited for room (a trace of the thread showed
 * both idle in turn). Measured with 48 files in flight (anonymize.ts), 7 alternating rounds
 * on the benchmark's ext4: 1.22 s median against 1.26 s, faster in 6 of the 7 rounds.
 */
const SEND_AT = 4;
