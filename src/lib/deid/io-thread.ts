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
 * The anonymizer's I/O with one anonymizing thread: inputs read in the calling thread,
 * outputs published in the file thread, which is started now so that its start-up overlaps
 * the calling thread's.
 *
 * Why the reads stay here: a read (open, one pread of ~130 KB, close) costs some 30-90 us,
 * while creating an output on the benchmark's ext4 (no journal, files deleted minutes
 * before) costs the file thread 0.3-0.9 ms, so the file thread is the slower of the two. A
 * read sent there waited behind the outputs queued before it, with the calling thread idle
 * meanwhile (a CPU profile of 1,000 files: 330 ms of its 1.29 s). Measured with the
 * settings below, 6 alternating rounds of 1,000 files: reads here 1.06 s median, reads in
 * the file thread 1.08 s, reads there only while fewer than 4 outputs waited 1.18 s.
 */
export function publishingThreadIo(o: ThreadIoOptions = {}): FileIo & Pick<FileThread, 'ready'> {
  const thread = threadIo({ ...o, eager: true, sendAt: SEND_AT });
  return { readHead: localIo(ANONYMIZER_STYLE).readHead, write: (job) => thread.write(job), close: () => thread.close(), ready: () => thread.ready() };
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
