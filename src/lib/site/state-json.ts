/**
 * Tolerant reading of JSON state files: for tools that only look at another tool's state
 * under <site>/state/ (fiona-cleanup and fiona-heartbeat reading fiona-transfer's requests/
 * and transfers/, fiona-detect-study's detect-study.json), and for files whose loss costs
 * nothing (execMeasurements.json). Such files are written atomically, so one that does not
 * parse is being replaced right now, or damaged; either way the reader skips it and the next
 * run sees it again. The owner of a format (e.g. transfer/requests.ts) reads its own files
 * strictly instead.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isObject } from '../config/config.js';

export type JsonObject = Record<string, unknown>;

export interface JsonFile {
  path: string;
  value: JsonObject;
}

/** Names of the `*.json` files in dir, or undefined when dir is missing or unreadable. */
export async function jsonFileNames(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith('.json'));
  } catch {
    return undefined;
  }
}

/** One state file as a JSON object; undefined when it is missing, unreadable or not an object. */
export async function readJsonObject(path: string): Promise<JsonObject | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(path, 'utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Every `*.json` file in dir that reads as a JSON object (none when dir is missing). */
export async function readJsonObjects(dir: string): Promise<JsonFile[]> {
  const out: JsonFile[] = [];
  for (const name of (await jsonFileNames(dir)) ?? []) {
    const path = join(dir, name);
    const value = await readJsonObject(path);
    if (value) out.push({ path, value });
  }
  return out;
}
