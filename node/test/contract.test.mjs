// The storage contract's test guest (tests/guests/storage-contract) on the
// SQL provider, through this package's own `sql` import and transactions
// (database.mjs), on SQLite and PostgreSQL: the scenarios the Rust host runs
// on its backends and Python on its drivers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { ReclaimHost } from '../src/host.mjs';
import { openDatabase } from '../src/database.mjs';
import { freshDatabase } from './postgres.mjs';
import { scratch } from './scratch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repository = path.resolve(root, '..');
const settings = { publicUrl: 'https://id.example.test', secrets: ['node-contract-secret-0123456789abcdef01234'] };

/** The guest on the provider, built and composed from the checkout, then transpiled. */
async function guest() {
  const target = path.join(repository, 'target/guests');
  const env = { ...process.env };
  delete env.CARGO_TARGET_DIR;
  const cargo = (...args) => execFileSync('cargo', args, { cwd: repository, env, stdio: 'inherit' });
  cargo('build', '--quiet', '--locked', '--package', 'reclaim-storage-contract', '--package', 'reclaim-sql-provider',
    '--target', 'wasm32-wasip2', '--release', '--target-dir', target);
  const dir = await scratch('reclaim-guest-');
  const wasm = path.join(dir, 'storage-guest.wasm');
  const release = path.join(target, 'wasm32-wasip2/release');
  cargo('run', '--quiet', '--locked', '--package', 'reclaim-compose', '--target-dir', target, '--', 'plug',
    path.join(release, 'reclaim_storage_contract.wasm'), path.join(release, 'reclaim_sql_provider.wasm'), wasm);
  execFileSync(process.execPath, [path.join(root, 'node_modules/@bytecodealliance/jco/dist/jco.js'), 'transpile', wasm,
    '-o', path.join(dir, 'gen'), '--name', 'guest', '--instantiation', 'async', '--quiet'], { stdio: 'inherit' });
  const { instantiate } = await import(pathToFileURL(path.join(dir, 'gen/guest.js')).href);
  return (imports) => instantiate(async (name) => WebAssembly.compile(await readFile(path.join(dir, 'gen', name))), imports);
}

const built = guest();

async function keeps(where) {
  // Opening a host makes the provider's tables; the guest runs on a
  // connection of its own to the same database.
  const host = await ReclaimHost.open({ ...where, settings });
  const db = openDatabase(where);
  const unplugged = () => { throw new Error('host-options says the provider answers this'); };
  const imports = {
    ...new WASIShim({ sandbox: { preopens: {}, env: {}, enableNetwork: false } }).getImportObject(),
    'reclaim:recovery/sql': db.sql,
    'reclaim:recovery/host-options': { get: () => ({ ownDirectory: false, ownMailer: false }) },
    'reclaim:recovery/directory': { getById: unplugged, getByPk: unplugged, findByEmail: unplugged },
    'reclaim:recovery/mailer': { queue: unplugged },
  };
  const instantiate = await built;
  const call = async (run) => {
    const exports = await instantiate(imports);
    db.begin();
    try {
      const answer = run(exports);
      db.commit();
      return answer;
    } catch (e) {
      db.rollback();
      throw e;
    }
  };
  const scenarios = await call((e) => e.scenarios());
  assert.ok(scenarios.length >= 13, `${scenarios}`);
  for (const [n, scenario] of scenarios.entries()) {
    const { id } = await host.createIdentity({ email: `guest${n}@example.com` });
    // `err` arrives as a thrown ComponentError whose payload says which step.
    await call((e) => e.run(scenario, id)).catch((error) => {
      assert.fail(`the contract was broken: ${error.payload ?? error}`);
    });
  }
  db.close();
  host.close();
}

test('the storage guest finds the contract kept through the provider on SQLite', async () => {
  await keeps({ dbPath: path.join(await scratch('reclaim-contract-'), 'reclaim.db') });
});

test('the storage guest finds the contract kept through the provider on PostgreSQL', async () => {
  await keeps({ databaseUrl: await freshDatabase() });
});
