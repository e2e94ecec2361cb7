/**
 * Downloading .debs over HTTP(S) in Node, and verifying them against the
 * size and SHA-256 from the signed package index before they enter the cache.
 */
import { createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { sha256File, tempPathFor } from './cache.js';
import { describe, ImageError } from './errors.js';

/**
 * Fetches `url` into the file `dest` (created or truncated), calling
 * `onBytes(n)` as bytes arrive. Throws on any failure; the caller removes
 * `dest`. Injectable, so tests can replace the network.
 */
export type Downloader = (url: string, dest: string, onBytes: (n: number) => void) => Promise<void>;

const MAX_REDIRECTS = 5;
const IDLE_TIMEOUT_MS = 60_000;

function get(url: string): Promise<http.IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, { headers: { 'user-agent': 'disco-image-fetch' } }, resolvePromise);
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
  });
}

/** The default Downloader: node:http/https, following up to 5 redirects. */
export const httpDownload: Downloader = async (url, dest, onBytes) => {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await get(current);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw new Error('too many redirects');
      current = new URL(res.headers.location, current).toString();
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw new Error(`HTTP ${status} ${res.statusMessage ?? ''}`.trim());
    }
    res.setTimeout(IDLE_TIMEOUT_MS, () => res.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        onBytes(chunk.length);
        cb(null, chunk);
      },
    });
    await pipeline(res, count, createWriteStream(dest));
    return;
  }
};

export interface VerifiedDownload {
  readonly url: string;
  /** Final path in the cache; written only once verified. */
  readonly dest: string;
  readonly size: number;
  readonly sha256: string;
  /** Name used in messages (e.g. the package file name). */
  readonly label: string;
}

/**
 * Downloads to a temporary file beside `dest`, checks size and SHA-256, and
 * renames into place. Nothing is left behind on failure. One retry on a
 * network error (not on a checksum mismatch).
 */
export async function downloadVerified(d: VerifiedDownload, download: Downloader, onBytes: (n: number) => void): Promise<void> {
  const tmp = tempPathFor(d.dest);
  try {
    for (let attempt = 1; ; attempt++) {
      let got = 0;
      try {
        await download(d.url, tmp, (n) => { got += n; onBytes(n); });
        break;
      } catch (err) {
        onBytes(-got);
        rmSync(tmp, { force: true });
        if (attempt >= 2) throw new ImageError(`cannot download ${d.label}: ${describe(err)}`);
      }
    }
    const size = statSync(tmp).size;
    if (size !== d.size) throw new ImageError(`cannot download ${d.label}: size ${size} instead of ${d.size} bytes`);
    const hash = await sha256File(tmp);
    if (hash !== d.sha256) throw new ImageError(`SHA256 mismatch for ${d.label}: expected ${d.sha256}, got ${hash}`);
    renameSync(tmp, d.dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    if (err instanceof ImageError) throw err;
    throw new ImageError(`cannot download ${d.label}: ${describe(err)}`);
  }
}
