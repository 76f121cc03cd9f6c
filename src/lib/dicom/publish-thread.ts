import { type FileThread, type WriteJob, fileThread } from './file-thread.js';

/**
 * rewriteFiles' publishing thread: the core's file thread (file-thread.ts), started at once,
 * publishing with the steps of publish.ts (open the temp name, writev, [fdatasync], close,
 * rename, [fsync the folder]; a missing output folder is an error). It creates, writes and
 * renames one file after the other; with fsync the fdatasyncs of the files in flight run
 * together on its thread pool and folder syncs are coalesced (a file is answered once its
 * fdatasync and a folder fsync begun after its rename have completed).
 *
 * Measured on the 1,000-file edit (docs/dicom-core.md): doing every step on the calling
 * thread's libuv pool did worse than the synchronous loop (four round trips per file, each
 * waiting for the calling thread, and four pool threads contending for the folder's lock);
 * one thread doing the whole publish per message did better.
 */

export class PublishThread {
  private readonly thread: FileThread;

  constructor() {
    // A few requests a message (each message costs both threads some 10 us), and the rest
    // when this thread next waits, so the other thread is never left without work.
    this.thread = fileThread({ eager: true, queueUntilReady: true, sendAt: 4, style: { makeDir: false } });
  }

  /** True once the thread takes requests (and has not stopped since). */
  get ready(): boolean {
    return this.thread.isReady();
  }

  /** True once the thread has died or was closed: publish() runs on the calling thread from then on. */
  get stopped(): boolean {
    return this.thread.isStopped();
  }

  /**
   * Publish; resolves with the bytes written once the file is under its final name (and
   * durable with fsync). Once the thread has stopped (it can die between rewriteFiles'
   * choice and this call, while an async visitor answers), and should it die with the file
   * in hand, the calling thread publishes it.
   */
  publish(req: WriteJob): Promise<number> {
    return this.thread.write(req);
  }

  async close(): Promise<void> {
    await this.thread.close();
  }
}
