// Races across processes: 32 processes, each with its own host on the same
// database (a SQLite file, a PostgreSQL database), redeem one link at once.
// SQLite's write lock, PostgreSQL's row lock and the provider's guarded
// UPDATE must leave exactly one winner, round after round.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReclaimHost } from '../src/host.mjs';
import { freshDatabase } from './postgres.mjs';

const PROCESSES = 32;
const ROUNDS = 10;
const here = path.dirname(fileURLToPath(import.meta.url));
const settings = { publicUrl: 'https://id.example.test', secrets: ['node-race-secret-0123456789abcdef0123456'] };

async function race(where) {
  const host = await ReclaimHost.open({ ...where, settings });
  const ann = await host.createIdentity({ email: 'ann@example.com' });
  const workers = Array.from({ length: PROCESSES }, () =>
    fork(path.join(here, 'redeemer.mjs'), [JSON.stringify(where), JSON.stringify(settings)]));
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
}

test('of 32 processes redeeming one link, exactly one wins', async () => {
  await race({ dbPath: path.join(await scratch('reclaim-race-'), 'reclaim.db') });
});

test('of 32 processes redeeming one link on PostgreSQL, exactly one wins', async () => {
  await race({ databaseUrl: await freshDatabase() });
});
