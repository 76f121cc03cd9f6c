/**
 * A real SMTP server on 127.0.0.1 (the smtp-server package) that keeps every message it
 * receives, for tests of mail notification. No TLS, no authentication required (loopback
 * only); a port from the kernel.
 *
 *   const smtp = await startSmtp();
 *   ... send to smtp.url (smtp://127.0.0.1:PORT) ...
 *   await smtp.waitFor(2);  smtp.messages[0].subject ...
 *   await smtp.stop();
 */
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The whole message as it came (headers and body). */
  raw: string;
  subject: string;
  /** The body with quoted-printable soft breaks and =XX escapes decoded when the message used it. */
  text: string;
  headers: Record<string, string>;
}

export interface SmtpPeer {
  port: number;
  url: string;
  messages: ReceivedMail[];
  /** Resolve when at least n messages arrived (or reject after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Make the next n transactions fail with a 451 (transient) reply. */
  failNext(n: number): void;
  stop(): Promise<void>;
}

function parseHeaders(head: string): Record<string, string> {
  const out: Record<string, string> = {};
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

function decodeBody(body: string, encoding: string | undefined): string {
  if (encoding?.toLowerCase() === 'quoted-printable') {
    const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  if (encoding?.toLowerCase() === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body;
}

export async function startSmtp(): Promise<SmtpPeer> {
  const messages: ReceivedMail[] = [];
  const waiters: Array<() => void> = [];
  let failures = 0;
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (failures > 0) {
          failures--;
          const err = new Error('try again later') as Error & { responseCode: number };
          err.responseCode = 451;
          callback(err);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const split = raw.search(/\r?\n\r?\n/);
        const head = split >= 0 ? raw.slice(0, split) : raw;
        const body = split >= 0 ? raw.slice(split).replace(/^\r?\n\r?\n/, '') : '';
        const headers = parseHeaders(head);
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject: headers.subject ?? '',
          text: decodeBody(body, headers['content-transfer-encoding']),
          headers,
        });
        for (const w of waiters.splice(0)) w();
        callback();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : 0);
    });
  });
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    failNext(n) {
      failures = n;
    },
    async waitFor(n, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} mails, got ${messages.length} after ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 200);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return messages;
    },
    stop() {
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
