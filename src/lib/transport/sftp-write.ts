/**
 * SFTP WRITE requests built in place: the caller's slot holds `WRITE_HEAD` free bytes and then
 * the data (read there from the file), the request's header is written into the free bytes
 * just before the data, and the slot goes to the SSH channel as it is.
 *
 * Why: ssh2's `SFTP.write` allocates a new buffer per request (a ~252 KiB ArrayBuffer of its
 * own: 4,096 per GB, and the garbage collections their external memory sets off) and copies
 * the data into it before the packet layer copies it again into its SSH packets. Measured with
 * `node --cpu-prof` on 1 GB in one file, that first copy and allocation cost the client thread,
 * which is the busier party of the transfer, ~0.5 s of CPU per GB.
 *
 * This uses ssh2 internals (`_writeReqid`, `_requests`, `_buffer`, `_waitWindow`, `_chunkcb`,
 * `outgoing`, `_protocol.channelData`), so before a session writes this way, ssh2's own
 * `write` is run once on a stand-in session and must produce, byte for byte, the request this
 * module builds, through the same channel calls, with the same window handling (split at the
 * window and the packet size, the rest queued until the window opens). Any difference, or
 * fields that are not there, and the session keeps ssh2's `write`. `FIONA_SFTP_WRITES=ssh2`
 * turns this off. The code that sends and queues a request (`tryWrite`, `drain`) repeats
 * ssh2 1.x's `tryWritePayload` and `drainBuffer` (module-private in lib/protocol/SFTP.js).
 */
import type { SFTPWrapper } from 'ssh2';

/** Free bytes a slot needs before its data: length, type, id, handle (up to 64 bytes), offset, data length. */
export const WRITE_HEAD = 96;
/** SSH_FXP_WRITE. */
const FXP_WRITE = 6;
/** ssh2's request id mask (the same expression, so ids continue where ssh2's own left off). */
const MAX_REQID = 2 ** 32 - 1;

type Callback = (err?: Error | null) => void;

/** The parts of ssh2's SFTP session this module touches. */
interface SftpInternals {
  server?: boolean;
  _maxWriteLen: number;
  _writeReqid: number;
  _requests: Record<number, { cb: (err?: Error) => void }>;
  _buffer: Buffer[];
  _waitWindow: boolean;
  _chunkcb?: () => void;
  outgoing: { id: number; window: number; packetSize: number; state: string };
  _protocol: { channelData(id: number, data: Buffer): void };
  write(handle: Buffer, buf: Buffer, off: number, len: number, position: number, cb: Callback): void;
}

function writeUInt32BE(buf: Buffer, value: number, at: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** Bytes of a WRITE request's header with this handle. */
function headLen(handle: Buffer): number {
  return 4 + 1 + 4 + 4 + handle.length + 8 + 4;
}

/**
 * Send as much of `payload` as the channel window allows (at most a packet per channelData
 * call); the rest that did not fit, or undefined (ssh2's tryWritePayload).
 */
function tryWrite(s: SftpInternals, payload: Buffer): Buffer | undefined {
  const out = s.outgoing;
  if (out.state !== 'open') return undefined;
  if (out.window === 0) {
    s._waitWindow = true;
    s._chunkcb = drain;
    return payload;
  }
  const len = payload.length;
  let p = 0;
  while (len - p > 0 && out.window > 0) {
    const n = Math.min(len - p, out.window, out.packetSize);
    out.window -= n;
    if (out.window === 0) {
      s._waitWindow = true;
      s._chunkcb = drain;
    }
    s._protocol.channelData(out.id, p === 0 && n === len ? payload : payload.subarray(p, p + n));
    p += n;
  }
  return len - p > 0 ? payload.subarray(p, len) : undefined;
}

/** The channel window opened: send what is queued, in order (ssh2's drainBuffer; `this` is the session). */
function drain(this: SftpInternals): void {
  this._chunkcb = undefined;
  const buffer = this._buffer;
  let i = 0;
  while (i < buffer.length) {
    const payload = buffer[i]!;
    const rest = tryWrite(this, payload);
    if (rest !== undefined) {
      if (rest !== payload) buffer[i] = rest;
      if (i > 0) this._buffer = buffer.slice(i);
      return;
    }
    i++;
  }
  if (i > 0) this._buffer = [];
}

/**
 * One WRITE request for `slot[head, head + len)` at `position`, its header written into
 * `slot[head - headLen, head)`. `cb` gets the server's answer (an error, or nothing).
 */
function writeInPlace(s: SftpInternals, handle: Buffer, slot: Buffer, head: number, len: number, position: number, cb: Callback): void {
  const start = head - headLen(handle);
  const req = slot.subarray(start, head + len);
  writeUInt32BE(req, req.length - 4, 0);
  req[4] = FXP_WRITE;
  const reqid = (s._writeReqid = (s._writeReqid + 1) & MAX_REQID);
  writeUInt32BE(req, reqid, 5);
  writeUInt32BE(req, handle.length, 9);
  req.set(handle, 13);
  let p = 13 + handle.length;
  // uint64, as ssh2 writes it (division: positions above 2^32).
  for (let i = 7, v = position; i >= 0; i--) {
    req[p + i] = v & 0xff;
    v /= 256;
  }
  writeUInt32BE(req, len, (p += 8));
  s._requests[reqid] = { cb: (err) => cb(err) };
  // A queue left behind (it should be empty whenever the window is open) goes first: order matters.
  if (s._buffer.length > 0 && s.outgoing.window > 0 && !s._waitWindow) drain.call(s);
  const rest = s._buffer.length > 0 ? req : tryWrite(s, req);
  if (rest !== undefined) s._buffer.push(rest);
}

const checked = new WeakMap<object, boolean>();

function hasFields(s: Partial<SftpInternals> | undefined): s is SftpInternals {
  const o = s?.outgoing;
  return (
    !!s &&
    typeof s._writeReqid === 'number' &&
    typeof s._maxWriteLen === 'number' &&
    typeof s._requests === 'object' &&
    s._requests !== null &&
    Array.isArray(s._buffer) &&
    typeof s._waitWindow === 'boolean' &&
    typeof s._protocol?.channelData === 'function' &&
    typeof s.write === 'function' &&
    !!o &&
    typeof o.window === 'number' &&
    typeof o.packetSize === 'number' &&
    typeof o.id === 'number' &&
    typeof o.state === 'string'
  );
}

/** What a stand-in session saw: the channel calls, the queue, and the window state after. */
interface Trace {
  sent: string[];
  queued: string[];
  waitWindow: boolean;
  draining: boolean;
  answered: string[];
  /** The pending-request table's entries (id: fields): ssh2's reply handlers read them, not only `cb`. */
  requests: string[];
}

/**
 * Run `send` (ssh2's write or ours) on a stand-in session whose window is `window` bytes and
 * packets `packetSize`, then open the window twice, answering the requests; what happened.
 */
function trace(proto: object, window: number, packetSize: number, send: (s: SftpInternals, answer: (tag: string) => Callback) => void): Trace {
  const sent: string[] = [];
  const answered: string[] = [];
  const s = Object.create(proto) as SftpInternals;
  Object.assign(s, {
    server: false,
    _debug: undefined,
    _maxWriteLen: 1000,
    _writeReqid: 2 ** 31 - 3, // crosses 2^31 on the way: same ids, same bytes
    _requests: {},
    _buffer: [],
    _waitWindow: false,
    _chunkcb: undefined,
    outgoing: { id: 7, window, packetSize, state: 'open' },
    _protocol: { channelData: (id: number, d: Buffer) => sent.push(`${id}:${d.toString('hex')}`) },
  });
  send(s, (tag) => (err) => answered.push(`${tag}:${err ? err.message : 'ok'}`));
  const after: Trace = {
    sent,
    queued: s._buffer.map((b) => b.toString('hex')),
    waitWindow: s._waitWindow,
    draining: typeof s._chunkcb === 'function',
    answered,
    requests: Object.entries(s._requests).map(([id, r]) => `${id}:${Object.keys(r).join(',')}`),
  };
  // The window opens (as ssh2's CHANNEL_WINDOW_ADJUST handler does it), twice.
  for (let k = 0; k < 2; k++) {
    s.outgoing.window += 150;
    if (s._waitWindow) {
      s._waitWindow = false;
      s._chunkcb?.call(s);
    }
  }
  after.queued.push('|', ...s._buffer.map((b) => b.toString('hex')));
  for (const [id, r] of Object.entries(s._requests)) r.cb(id.endsWith('1') ? new Error('x') : undefined);
  return after;
}

/** The requests both sides send in a trace: three of different lengths and handles, one past 2^32. */
const PROBES: Array<[handle: Buffer, len: number, position: number]> = [
  [Buffer.from([0, 0, 0, 1]), 100, 0],
  [Buffer.from('a-longer-handle-of-32-bytes-here'), 1, 2 ** 32 + 5],
  [Buffer.from([9, 8, 7, 6]), 300, 123_456_789],
];

/** Whether this module reproduces ssh2's WRITE on sessions of this class (checked once per class). */
function sameAsSsh2(s: SftpInternals): boolean {
  const proto = Object.getPrototypeOf(s) as object;
  const known = checked.get(proto);
  if (known !== undefined) return known;
  let same = false;
  try {
    const data = Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 7 + 3) & 0xff));
    for (const [window, packetSize] of [[1 << 20, 1 << 20], [250, 64], [0, 64]] as const) {
      const theirs = trace(proto, window, packetSize, (t, answer) => {
        PROBES.forEach(([h, len, pos], k) => t.write(h, data, 0, len, pos, answer(String(k))));
      });
      const ours = trace(proto, window, packetSize, (t, answer) => {
        PROBES.forEach(([h, len, pos], k) => {
          const slot = Buffer.alloc(WRITE_HEAD + len, 0xee);
          data.copy(slot, WRITE_HEAD, 0, len);
          writeInPlace(t, h, slot, WRITE_HEAD, len, pos, answer(String(k)));
        });
      });
      if (theirs.sent.length === 0 || theirs.answered.length !== PROBES.length || JSON.stringify(theirs) !== JSON.stringify(ours)) {
        checked.set(proto, false);
        return false;
      }
    }
    same = true;
  } catch {
    same = false;
  }
  checked.set(proto, same);
  return same;
}

/** Whether WRITE requests on this session are built in place (else ssh2's write copies them). */
export function writesInPlace(sftp: SFTPWrapper): boolean {
  if (process.env.FIONA_SFTP_WRITES === 'ssh2') return false;
  const s = sftp as unknown as Partial<SftpInternals>;
  return hasFields(s) && s.server !== true && sameAsSsh2(s);
}

/**
 * A function that sends one WRITE request for `slot[head, head + len)` at `position`: in place
 * where writesInPlace(sftp) (the slot must then stay untouched until `cb`), else through
 * ssh2's write (which copies it). `head` must be at least WRITE_HEAD for the in-place path.
 */
export function writerFor(sftp: SFTPWrapper): (handle: Buffer, slot: Buffer, head: number, len: number, position: number, cb: Callback) => void {
  if (writesInPlace(sftp)) {
    const s = sftp as unknown as SftpInternals;
    return (handle, slot, head, len, position, cb) => {
      if (head >= headLen(handle) && len <= s._maxWriteLen) writeInPlace(s, handle, slot, head, len, position, cb);
      else sftp.write(handle, slot, head, len, position, cb);
    };
  }
  return (handle, slot, head, len, position, cb) => sftp.write(handle, slot, head, len, position, cb);
}
