/** The shapes of the element index (the contract other modules code against). */

/** An encapsulated pixel data fragment: offset of its first byte (after the item header) and its length. */
export interface Fragment {
  offset: number;
  length: number;
}

/** Where an item of a sequence sits: offset of its (FFFE,E000) header, its length field, and the offset after it. */
export interface ItemRange {
  offset: number;
  length: number; // 0xffffffff = undefined (ends with an item delimiter)
  end: number; // offset just past the item, delimiter included
}

export const UNDEFINED_LENGTH = 0xffffffff;

export interface DicomElement {
  tag: number;
  vr: string;
  headerOffset: number;
  valueOffset: number;
  length: number; // 0xffffffff = undefined
  /** SQ, or VR UN that holds a sequence (PS3.5 6.2.2): the items, each a list of elements. */
  items?: DicomElement[][];
  /** Encapsulated pixel data: the fragments (the first is the Basic Offset Table). */
  fragments?: Fragment[];
  /** For private elements (gggg,xxee): the creator of block xx. */
  privateCreator?: string;
  /** Offset just past the element, sequence delimiter included. */
  end: number;
  /** For sequences: where each item starts and ends. */
  itemRanges?: ItemRange[];
  /** Encoding of the items of a sequence (a VR UN sequence is implicit VR little endian). */
  itemsImplicit?: boolean;
  /** True when the value was not read into memory (a large bulk value skipped over). */
  skipped?: boolean;
}
