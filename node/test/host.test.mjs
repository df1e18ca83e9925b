// The Node.js host itself: the same component bytes as the Rust host, a
// SQLite file that survives a restart, mail as .eml files.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock, ReclaimHost, RecoveryError } from '../src/host.mjs';
import { freshDatabase } from './postgres.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const settings = { publicUrl: 'https://id.example.test', secrets: ['node-host-secret-0123456789abcdef0123456'] };

test('the transpiled component is the Rust host\'s for SQL hosts, byte for byte', async () => {
  const reclaim = process.env.RECLAIM_BIN ?? path.resolve(root, '../target/debug/reclaim');
  const dir = await scratch('reclaim-bytes-');
  const fresh = path.join(dir, 'embedded.wasm');
  const reported = JSON.parse(execFileSync(reclaim, ['component', '--sql', '--out', fresh], { encoding: 'utf8' }));
  const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
  const ours = await readFile(path.join(root, 'gen/reclaim.wasm'));
  assert.equal(sha(ours), reported.sha256);
  assert.equal(sha(await readFile(fresh)), reported.sha256);
});

test('links survive a restart of the host and redeem once', async () => {
  const dir = await scratch('reclaim-node-');
  const dbPath = path.join(dir, 'reclaim.db');
  const clock = new ManualClock(1_800_000_000);
  const first = await ReclaimHost.open({ dbPath, settings, clock });
  const ann = await first.createIdentity({ email: 'ann@example.com', displayName: 'Ann' });
  const link = await first.createLink(ann.pk, { expiresIn: '30m' });
  assert.match(link.link, /^https:\/\/id\.example\.test\/self-service\/recovery\?flow=[0-9a-f-]{36}&token=[A-Za-z0-9_-]{43}$/);

  const second = await ReclaimHost.open({ dbPath, settings, clock });
  const token = link.link.split('token=')[1];
  assert.equal((await second.redeemLink(token)).identityId, ann.id);
  await assert.rejects(second.redeemLink(token), (e) => e instanceof RecoveryError && e.kind === 'credential-used');
});

test('the raw token never reaches the SQLite file', async () => {
  const dir = await scratch('reclaim-node-');
  const dbPath = path.join(dir, 'reclaim.db');
  const host = await ReclaimHost.open({ dbPath, settings, clock: new ManualClock(1_800_000_000) });
  const ann = await host.createIdentity({ email: 'ann@example.com' });
  const link = await host.createLink(ann.id);
  // The WAL holds what is not yet checkpointed into the file.
  const bytes = Buffer.concat([await readFile(dbPath), await readFile(`${dbPath}-wal`)]);
  assert.ok(bytes.includes(Buffer.from(ann.id)));
  assert.ok(!bytes.includes(Buffer.from(link.link.split('token=')[1])));
});

test('mailed links arrive as .eml files in the identity\'s language', async () => {
  const dir = await scratch('reclaim-node-');
  const outboxDir = path.join(dir, 'outbox');
  const host = await ReclaimHost.open({ dbPath: path.join(dir, 'reclaim.db'), outboxDir, settings, clock: new ManualClock(1_800_000_000) });
  const bea = await host.createIdentity({ email: 'bea@example.com', displayName: 'Bea', locale: 'de' });
  await host.sendRecoveryEmail(bea.id);
  const files = await readdir(outboxDir);
  assert.equal(files.length, 1);
  const eml = await readFile(path.join(outboxDir, files[0]), 'utf8');
  assert.match(eml, /Subject: Zugang zu Ihrem Konto wiederherstellen/);
  assert.match(eml, /Hallo Bea/);
  const link = eml.match(/https:\/\/id\.example\.test\/self-service\/recovery\?flow=[^\s"<]+/)[0];
  assert.equal((await host.redeemLink(link.split('token=')[1])).identityId, bea.id);
});

test('an embedder\'s own directory is consulted, and its changes end recovery', async () => {
  const dir = await scratch('reclaim-node-');
  const users = [{ id: '5b0f7e84-2c1a-4d55-9c3e-6a4a1f0d2b77', pk: 41, email: 'ann@embedder.example', displayName: 'Ann', active: true }];
  const directory = {
    getById: (id) => users.find((u) => u.id === id) ?? null,
    getByPk: (pk) => users.find((u) => u.pk === pk) ?? null,
    findByEmail: (email) => users.find((u) => u.email.toLowerCase() === email.toLowerCase()) ?? null,
  };
  const host = await ReclaimHost.open({ dbPath: path.join(dir, 'reclaim.db'), settings, clock: new ManualClock(1_800_000_000), directory });
  const link = await host.createLink(41);
  assert.equal((await host.redeemLink(link.link.split('token=')[1])).identityId, users[0].id);
  const before = await host.createLink(41);
  users[0].email = 'ann@moved.example';
  await assert.rejects(host.redeemLink(before.link.split('token=')[1]), (e) => e instanceof RecoveryError && e.kind === 'credential-revoked');
  await assert.rejects(host.createLink(7), (e) => e.kind === 'identity-not-found');
  assert.equal(host.query('SELECT count(*) AS n FROM identities', [])[0].n, 0n);
});

test('queued mail keeps its flow, and an address the courier would refuse is refused at once', async () => {
  const dir = await scratch('reclaim-outbox-');
  const clock = new ManualClock(1_800_000_000);
  const host = await ReclaimHost.open({ dbPath: path.join(dir, 'reclaim.db'), settings, clock });
  const ann = await host.createIdentity({ email: 'ann@example.com' });
  const mailed = await host.sendRecoveryEmail(ann.id);
  const [row] = host.query('SELECT flow_id, queued_at FROM outbox');
  // The flow lets an abandoned message revoke its link (the WIT mailer's rule).
  assert.deepEqual(row, { flow_id: mailed.flowId, queued_at: 1_800_000_000n * 1_000_000_000n });
  host.query("UPDATE identities SET email = 'ann@[127.0.0.1]' RETURNING id");
  await assert.rejects(host.sendRecoveryEmail(ann.id), (e) => e instanceof RecoveryError && e.kind === 'mail-rejected');
  assert.equal(host.query('SELECT count(*) AS n FROM credentials')[0].n, 1n, 'the refused link was not kept');
});

test('on PostgreSQL a link redeems once and its mail goes out, for every host on the database', async () => {
  const databaseUrl = await freshDatabase();
  const outboxDir = await scratch('reclaim-pg-outbox-');
  const first = await ReclaimHost.open({ databaseUrl, settings, outboxDir });
  const ann = await first.createIdentity({ email: 'Ann@Example.com', displayName: 'Ann' });
  await first.requestRecovery('ann@example.com');
  assert.equal((await readdir(outboxDir)).filter((f) => f.endsWith('.eml')).length, 1, 'found in another case');
  const second = await ReclaimHost.open({ databaseUrl, settings });
  const { link } = await second.createLink(ann.pk);
  const token = link.split('token=')[1];
  assert.equal((await first.redeemLink(token)).identityId, ann.id);
  await assert.rejects(second.redeemLink(token), (e) => e instanceof RecoveryError && e.kind === 'credential-used');
  const [row] = first.query("SELECT count(*) AS n FROM outbox WHERE status = 'sent' AND flow_id IS NOT NULL");
  assert.equal(Number(row.n), 1);
  first.close();
  second.close();
});
