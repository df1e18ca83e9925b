// The package as a platform gets it: `npm pack`, the tarball installed into
// an empty project, and the smallest embedding run there.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund'], { cwd, encoding: 'utf8' });

test('the packed tarball installs into an empty project and recovers an account there', async () => {
  const dir = await scratch('reclaim-pack-');
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], root));
  const files = packed.files.map((f) => f.path);
  for (const needed of ['index.d.ts', 'src/host.mjs', 'gen/reclaim/reclaim.js', 'gen/reclaim/reclaim.core.wasm']) {
    assert.ok(files.includes(needed), `${needed} is packed`);
  }
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')));

  const project = path.join(dir, 'consumer');
  await mkdir(project);
  // npm 11 runs a dependency's install script only once the project allows it.
  await writeFile(path.join(project, 'package.json'), JSON.stringify({
    name: 'consumer', private: true, type: 'module', allowScripts: { 'better-sqlite3': true },
  }));
  npm(['install', path.join(dir, packed.filename)], project);
  await writeFile(path.join(project, 'index.mjs'), `
import { ReclaimHost } from 'reclaim-recovery';

const host = await ReclaimHost.open({
  dbPath: 'reclaim.db',
  settings: { publicUrl: 'https://id.example.com', secrets: ['a-hashing-secret-of-at-least-32-bytes!'] },
});
const ann = await host.createIdentity({ email: 'ann@example.com', displayName: 'Ann' });
const { link } = await host.createLink({ tag: 'id', val: ann.id }, '30m');
const { identityId } = await host.redeemLink(link.split('token=')[1]);
console.log(identityId === ann.id ? 'recovered' : 'wrong identity');
`);
  const out = execFileSync(process.execPath, ['index.mjs'], { cwd: project, encoding: 'utf8' });
  assert.equal(out.trim(), 'recovered');
});
