import { ANONYMIZER_STYLE, type FileThread, type FileThreadOptions, fileThread } from '../dicom/file-thread.js';

/**
 * The anonymizer's file I/O thread is the DICOM core's file thread (dicom/file-thread.ts):
 * inputs read ahead into shared buffers, outputs published there with the core's publish
 * steps (temp name, write, fdatasync on the thread pool when fsync is on, rename, coalesced
 * folder sync; a vanished output folder made again), the calling thread doing the work
 * until the thread has started and if it dies.
 */
export type ThreadIoOptions = Omit<FileThreadOptions, 'style' | 'sendAt'>;

/** A file thread publishing in the anonymizer's way, started at the second request (or now with `eager`). */
export function threadIo(o: ThreadIoOptions = {}): FileThread {
  return fileThread({ ...o, style: ANONYMIZER_STYLE });
}
