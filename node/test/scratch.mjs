// Temporary directories for a test file, removed when its tests are done:
// left behind, every run's databases and packed consumers (tens of MB
// each) would fill the disk CI runs on.
import { after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const made = [];
after(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A fresh directory under the system's temporary one, named `prefix...`. */
export async function scratch(prefix) {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
