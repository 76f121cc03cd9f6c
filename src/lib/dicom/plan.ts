/**
 * An output plan: the bytes of a rewritten file as a list of ranges copied from the input
 * and new bytes. Adjacent copies merge, so an edit of one element gives three segments.
 */

export type Segment = { kind: 'copy'; start: number; end: number } | { kind: 'bytes'; data: Uint8Array };

export class Plan {
  readonly segments: Segment[] = [];
  length = 0;

  copy(start: number, end: number): this {
    if (end <= start) return this;
    const last = this.segments[this.segments.length - 1];
    if (last && last.kind === 'copy' && last.end === start) last.end = end;
    else this.segments.push({ kind: 'copy', start, end });
    this.length += end - start;
    return this;
  }

  bytes(data: Uint8Array): this {
    if (data.length === 0) return this;
    this.segments.push({ kind: 'bytes', data });
    this.length += data.length;
    return this;
  }

  append(other: Plan): this {
    for (const s of other.segments) {
      if (s.kind === 'copy') this.copy(s.start, s.end);
      else this.bytes(s.data);
    }
    return this;
  }
}

/** An element header in the given encoding (PS3.5 7.1): explicit long VRs take 12 bytes. */
export function elementHeader(tag: number, vr: string, length: number, explicit: boolean, le: boolean, longVr: boolean): Uint8Array {
  const size = explicit && longVr ? 12 : 8;
  const out = new Uint8Array(size);
  put16(out, 0, tag >>> 16, le);
  put16(out, 2, tag & 0xffff, le);
  if (!explicit) {
    put32(out, 4, length, le);
    return out;
  }
  out[4] = vr.charCodeAt(0);
  out[5] = vr.charCodeAt(1);
  if (longVr) {
    put32(out, 8, length, le);
  } else {
    if (length > 0xffff) throw new Error(`value of ${vr} is ${length} bytes, more than the 65534 its 2-byte length allows`);
    put16(out, 6, length, le);
  }
  return out;
}

// Plain byte writes: a DataView per header costs more than the header.
function put16(b: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) {
    b[at] = v & 0xff;
    b[at + 1] = (v >>> 8) & 0xff;
  } else {
    b[at] = (v >>> 8) & 0xff;
    b[at + 1] = v & 0xff;
  }
}

function put32(b: Uint8Array, at: number, v: number, le: boolean): void {
  const x = v >>> 0;
  if (le) {
    put16(b, at, x & 0xffff, true);
    put16(b, at + 2, x >>> 16, true);
  } else {
    put16(b, at, x >>> 16, false);
    put16(b, at + 2, x & 0xffff, false);
  }
}

/** An item header (FFFE,E000) with a length; the same 8 bytes in explicit and implicit VR. */
export function itemHeader(length: number, le: boolean): Uint8Array {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 0xfffe, le);
  dv.setUint16(2, 0xe000, le);
  dv.setUint32(4, length >>> 0, le);
  return out;
}

/** A sequence delimitation item (FFFE,E0DD) with length 0. */
export function sequenceDelimiter(le: boolean): Uint8Array {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 0xfffe, le);
  dv.setUint16(2, 0xe0dd, le);
  return out;
}
