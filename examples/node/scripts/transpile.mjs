// Writes the component embedded in the Rust host's `reclaim` binary (the
// same bytes) to gen/reclaim.wasm, then transpiles it with jco.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const reclaim = process.env.RECLAIM_BIN ?? path.resolve(root, '../../target/debug/reclaim');
mkdirSync(path.join(root, 'gen'), { recursive: true });
const wasm = path.join(root, 'gen/reclaim.wasm');
const written = execFileSync(reclaim, ['component', '--out', wasm], { encoding: 'utf8' });
// On stderr: `npm pack --json` prints its answer on stdout after this.
console.error(`component: ${written.trim()}`);
execFileSync(
  process.execPath,
  [path.join(root, 'node_modules/@bytecodealliance/jco/dist/jco.js'), 'transpile', wasm, '-o', path.join(root, 'gen/reclaim'), '--instantiation', 'async', '--quiet'],
  { stdio: 'inherit' },
);
