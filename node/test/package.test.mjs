// The package as a platform gets it: `npm pack`, the tarball installed into
// an empty project, and the README's smallest embedding run there.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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
  // The README's smallest embedding, exactly as written.
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const [, example] = readme.match(/## The smallest embedding\n\n```js\n([\s\S]*?)```/);
  await writeFile(path.join(project, 'index.mjs'), example);
  const out = execFileSync(process.execPath, ['index.mjs'], { cwd: project, encoding: 'utf8' });
  assert.equal(out.trim(), 'true true');
});
