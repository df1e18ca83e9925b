// A PostgreSQL server of the test file's own, on a free loopback port, and a
// fresh database in it per test: Debian's server where installed (the
// repository's scripts/test installs it). A test that needs it never skips.
import { after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';

/** As root, PostgreSQL's programs run as `postgres`, which they insist on. */
function asPostgres(program, args) {
  const root = process.getuid() === 0;
  execFileSync(root ? 'runuser' : program, root ? ['-u', 'postgres', '--', program, ...args] : args, { stdio: 'pipe' });
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

let started;
let stop = () => {};
// Registered when the test file loads, so it runs once the file's tests are
// done (registered inside a test, it would stop the server after that one).
after(() => stop());

async function start() {
  const versions = readdirSync('/usr/lib/postgresql').sort();
  if (versions.length === 0) throw new Error('PostgreSQL\'s server is not installed (/usr/lib/postgresql/*/bin)');
  const bin = path.join('/usr/lib/postgresql', versions.at(-1), 'bin');
  const dir = mkdtempSync('/tmp/reclaim-node-pg-');
  if (process.getuid() === 0) {
    const { uid, gid } = JSON.parse(execFileSync('python3', ['-c', 'import pwd,json;p=pwd.getpwnam("postgres");print(json.dumps({"uid":p.pw_uid,"gid":p.pw_gid}))']));
    chownSync(dir, uid, gid);
  }
  asPostgres(path.join(bin, 'initdb'), ['-D', `${dir}/data`, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  asPostgres(path.join(bin, 'pg_ctl'), ['-D', `${dir}/data`, '-w', '-l', `${dir}/log`, '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start']);
  stop = () => {
    asPostgres(path.join(bin, 'pg_ctl'), ['-D', `${dir}/data`, '-m', 'immediate', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  return `postgresql://postgres@127.0.0.1:${port}`;
}

/** The URL of a database of the caller's own. */
export async function freshDatabase() {
  started ??= start();
  const server = await started;
  const name = `t_${randomUUID().replaceAll('-', '')}`;
  const admin = new pg.Client({ connectionString: `${server}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return `${server}/${name}`;
}
