import type { Transporter } from 'nodemailer';

/**
 * The two notification mails FIONA sent for a prepared download: the link, and (only when
 * the archive is encrypted) the password in a second, separate mail, so that one
 * intercepted mail does not open the archive. Both carry the same random reference so the
 * recipient can pair them. No identifying value: project, event and the research
 * pseudonym at most.
 */
export interface MailSettings {
  /** smtp://host:port, smtps://user:pass@host:465, ... (nodemailer URL). */
  url: string;
  from: string;
  /** Connection and greeting timeouts (ms). */
  timeoutMs?: number;
}

export interface ExportNotice {
  to: string;
  project: string;
  event?: string;
  participant?: string;
  /** Where to download (URL), or the archive's name when no link base is configured. */
  link: string;
  reference: string;
  /** Who asked for the export (FIONA: sender_email); shown as the contact. */
  requester?: string;
  encrypted: boolean;
}

export class MailError extends Error {}

async function transport(s: MailSettings): Promise<Transporter> {
  // Loaded when a mail goes out: nodemailer is about 40 files, and most runs send none.
  const { createTransport } = await import('nodemailer');
  const t = s.timeoutMs ?? 30_000;
  return createTransport({ url: s.url, connectionTimeout: t, greetingTimeout: t, socketTimeout: t } as never);
}

export function linkMailText(n: ExportNotice): string {
  const lines = [
    `An export you asked for is ready (reference ${n.reference}).`,
    '',
    `Project: ${n.project}`,
    ...(n.participant ? [`Participant: ${n.participant}`] : []),
    ...(n.event ? [`Event: ${n.event}`] : []),
    `Download: ${n.link}`,
    '',
    n.encrypted
      ? 'The archive is encrypted (AES-256). The password comes in a separate mail with the same reference.'
      : 'The archive comes with an .md5 file: check it with md5sum -c after downloading.',
    'The link stays active for a limited number of days: download the files soon.',
    ...(n.requester ? [`Questions: ${n.requester}`] : []),
    '',
    'The data are pseudonymized but remain health data: store them only where your institution allows.',
  ];
  return `${lines.join('\n')}\n`;
}

export function passwordMailText(reference: string, password: string): string {
  return `Reference ${reference}\nPassword: ${password}\n`;
}

async function send(s: MailSettings, to: string, subject: string, text: string): Promise<void> {
  const t = await transport(s);
  try {
    await t.sendMail({ from: s.from, to, subject, text });
  } catch (err) {
    throw new MailError(`mail to ${to} via ${redactUrl(s.url)} failed: ${(err as Error).message}`);
  } finally {
    t.close();
  }
}

export function sendLinkMail(s: MailSettings, n: ExportNotice): Promise<void> {
  return send(s, n.to, `fiona: export ready (${n.project}, reference ${n.reference})`, linkMailText(n));
}

export function sendPasswordMail(s: MailSettings, to: string, reference: string, password: string): Promise<void> {
  return send(s, to, `fiona: reference ${reference}`, passwordMailText(reference, password));
}

/** An SMTP URL for messages, without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(bad SMTP URL)';
  }
}
