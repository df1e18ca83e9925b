// Writes the component the Rust host's `reclaim` binary embeds for SQL
// hosts (`reclaim component --sql`: the engine and the SQL provider, the
// same bytes) to gen/reclaim.wasm, then transpiles it with jco.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const reclaim = process.env.RECLAIM_BIN ?? path.resolve(root, '../target/debug/reclaim');
mkdirSync(path.join(root, 'gen'), { recursive: true });
for (const [name, flags] of [['reclaim', ['--sql']]]) {
  const wasm = path.join(root, `gen/${name}.wasm`);
  const written = execFileSync(reclaim, ['component', ...flags, '--out', wasm], { encoding: 'utf8' });
  // On stderr: `npm pack --json` prints its answer on stdout after this.
  console.error(`${name}: ${written.trim()}`);
  execFileSync(
    process.execPath,
    [path.join(root, 'node_modules/@bytecodealliance/jco/dist/jco.js'), 'transpile', wasm, '-o', path.join(root, `gen/${name}`),
      '--name', name, '--instantiation', 'async', '--quiet'],
    { stdio: 'inherit' },
  );

  // jco's instantiate calls `WebAssembly.promising` (JSPI) on every export
  // and catches the TypeError where Node.js lacks it (Node 20). V8 builds that
  // error's message by reparsing the calling function, here the whole 400 KB
  // instantiation, so each try cost about 6 ms, seven times per instance: most
  // of an operation. The same fallback, without the throw.
  const glue = path.join(root, `gen/${name}/${name}.js`);
  const generated = readFileSync(glue, 'utf8');
  writeFileSync(
    glue,
    `${generated.replaceAll('WebAssembly.promising(', 'jspiPromising(')}
function jspiPromising(f) {
  return typeof WebAssembly.promising === 'function' ? WebAssembly.promising(f) : f;
}
`,
  );
}
