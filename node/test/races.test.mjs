// Races across processes: 32 processes, each with its own host on the same
// SQLite file, redeem one link at once. SQLite's write lock and the guarded
// UPDATE must leave exactly one winner, round after round.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReclaimHost } from '../src/host.mjs';

const PROCESSES = 32;
const ROUNDS = 10;
const here = path.dirname(fileURLToPath(import.meta.url));
const settings = { publicUrl: 'https://id.example.test', secrets: ['node-race-secret-0123456789abcdef0123456'] };

test('of 32 processes redeeming one link, exactly one wins', async () => {
  const dir = await scratch('reclaim-race-');
  const dbPath = path.join(dir, 'reclaim.db');
  const host = await ReclaimHost.open({ dbPath, settings });
  const ann = await host.createIdentity({ email: 'ann@example.com' });
  const workers = Array.from({ length: PROCESSES }, () =>
    fork(path.join(here, 'redeemer.mjs'), [dbPath, JSON.stringify(settings)]));
  try {
    await Promise.all(workers.map((w) => once(w, 'message')));
    for (let round = 0; round < ROUNDS; round++) {
      const { link } = await host.createLink(ann.id);
      const token = link.split('token=')[1];
      const answers = workers.map((w) => once(w, 'message').then(([m]) => m));
      for (const w of workers) w.send(token);
      const outcomes = (await Promise.all(answers)).sort();
      assert.equal(outcomes.filter((o) => o === 'ok').length, 1, `round ${round}: ${outcomes}`);
      assert.equal(outcomes.filter((o) => o === 'credential-used').length, PROCESSES - 1, `round ${round}: ${outcomes}`);
    }
  } finally {
    for (const w of workers) w.send(null);
    await Promise.all(workers.map((w) => once(w, 'exit')));
    host.close();
  }
});
