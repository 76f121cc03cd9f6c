import { UsageError } from '../errors.js';
import { parsePacsAddress, type PacsAddress } from '../pull/address.js';
import { SourceError, type ExportSource } from './source.js';

/** A PACS to export from, and how to retrieve from it (fiona-pull's options). */
export interface PacsOptions extends PacsAddress {
  callingAet: string;
  method: 'move' | 'get';
  /** C-MOVE: the port we receive on, where the PACS sends (it must know our AE title there). */
  receivePort: number;
}

export function parsePacs(text: string): PacsAddress {
  try {
    return parsePacsAddress(text);
  } catch (err) {
    throw new UsageError(`--from: ${(err as Error).message}`);
  }
}

/**
 * An export source that pulls the study (by UID, else by accession number) into the job's
 * temp folder with fiona-pull's library, then hands over the placed files.
 */
export function pacsSource(p: PacsOptions, q: { studyUid?: string; accession?: string }, _version: string): ExportSource {
  return {
    kind: 'pacs',
    describe: `PACS ${p.aet} (${p.method === 'move' ? 'C-MOVE' : 'C-GET'})`,
    async pull(dest: string): Promise<string[]> {
      if (p.method === 'move' && !p.receivePort) throw new SourceError('C-MOVE needs --port (the port the PACS knows for our AE title)', true);
      // Loaded only when a job pulls: the network stack is the largest part of the process.
      const { pull, PullError } = await import('../pull/pull.js');
      try {
        const r = await pull({
          pacs: { aet: p.aet, host: p.host, port: p.port },
          callingAet: p.callingAet,
          method: p.method,
          out: dest,
          port: p.receivePort,
          query: q.studyUid ? { studyUid: q.studyUid } : { accession: q.accession },
        });
        if (r.studies.length > 1) throw new SourceError(`the accession number matches ${r.studies.length} studies; give the Study Instance UID`, true);
        if (r.failed > 0) throw new SourceError(`${r.failed} instance(s) of the study failed to arrive`, false);
        // Only what arrived for this study: during a C-MOVE anyone may send to our port.
        return r.files;
      } catch (err) {
        if (err instanceof SourceError) throw err;
        if (err instanceof PullError) throw new SourceError(err.message, err.permanent);
        throw new SourceError((err as Error).message, false);
      }
    },
  };
}
