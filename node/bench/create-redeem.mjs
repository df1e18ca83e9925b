// Create-then-redeem, one caller, for SECONDS: the Node.js row of
// scripts/bench-hosts, on a SQLite file or the postgresql:// DATABASE_URL
// given after SECONDS. Prints pairs per second and where an operation's
// time goes (the host's `observe` phases).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ReclaimHost } from '../src/host.mjs';

const seconds = Number(process.argv[2] ?? 5);
const databaseUrl = process.argv[3];
const phases = {};
const dir = await mkdtemp(path.join(tmpdir(), 'reclaim-bench-'));
const host = await ReclaimHost.open({
  ...(databaseUrl ? { databaseUrl } : { dbPath: path.join(dir, 'node.db') }),
  settings: { publicUrl: 'https://id.example.test', secrets: ['bench-secret-0123456789abcdef0123456789abcdef'] },
  observe: (phase, ms) => { phases[phase] = (phases[phase] ?? 0) + ms; },
});
const ann = await host.createIdentity({ email: 'ann@example.com' });
const pair = async () => {
  const { link } = await host.createLink(ann.id);
  await host.redeemLink(link.split('token=')[1]);
};
for (let i = 0; i < 50; i++) await pair();
for (const k of Object.keys(phases)) delete phases[k];
const started = performance.now();
let pairs = 0;
while (performance.now() - started < seconds * 1000) {
  await pair();
  pairs++;
}
const elapsed = performance.now() - started;
host.close();
await rm(dir, { recursive: true });
const total = Object.values(phases).reduce((a, b) => a + b, 0);
console.log(JSON.stringify({
  host: 'node', storage: databaseUrl ? 'postgresql' : 'sqlite', pairs_per_s: Math.round((pairs / elapsed) * 10000) / 10,
  share: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round((v / elapsed) * 1000) / 1000])),
  other: Math.round((1 - total / elapsed) * 1000) / 1000,
}));
