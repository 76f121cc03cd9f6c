import { ANONYMIZER_STYLE, type FileIo, type FileThread, type FileThreadOptions, fileThread } from '../dicom/file-thread.js';

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
 * The anonymizer's I/O with one anonymizing thread: inputs read and outputs published in the
 * file thread, which is started now so that its start-up overlaps the calling thread's
 * (until it has loaded, the calling thread reads and publishes itself).
 *
 * Reads go to the thread too. The calling thread (which parses, decides and renders) is the
 * slower of the two whenever creates are cheap, and its reads of ~130 KB took it 50-250 ms
 * per 1,000 files; the thread answers reads before the writes it has queued, so a read waits
 * at most for the writes of one turn there, while the calling thread works on other files.
 * Measured, 1,000 files on the benchmark's ext4, alternating rounds: faster in 20 of 29
 * (medians of four sets: 0.82 s against 0.92 s with the reads here in 10 rounds with the
 * order rotating, 0.69 against 0.80 in 5, 0.86 against 0.87 in 6, 0.83 against 0.80 in 8);
 * on tmpfs 0.76 against 0.80 and 0.67 against 0.70 (5 rounds each). An earlier round measured
 * 1.08 s against 1.06 s, when 16 files were in flight and requests went over only at the end
 * of each turn.
 */
export function publishingThreadIo(o: ThreadIoOptions = {}): FileIo & Pick<FileThread, 'ready'> {
  const thread = threadIo({ ...o, eager: true, sendAt: SEND_AT });
  return { readHead: (r, pool) => thread.readHead(r, pool), write: (job) => thread.write(job), close: () => thread.close(), ready: () => thread.ready() };
}

/**
 * Requests go to the thread as soon as this many wait, not only at the end of the event-loop
 * turn: the calling thread renders many files in one turn (their reads are local or already
 * answered), and the file thread, given its outputs only then, sat idle meanwhile, then had
 * a burst to publish while the calling thread waited for room (a trace of the thread showed
 * both idle in turn). Measured with 48 files in flight (anonymize.ts), 7 alternating rounds
 * on the benchmark's ext4: 1.22 s median against 1.26 s, faster in 6 of the 7 rounds.
 */
const SEND_AT = 4;
