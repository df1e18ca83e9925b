// The connection every statement of an operation runs on: a SQLite file
// (better-sqlite3) or PostgreSQL (`pg`, an optional dependency). Each is
// the `sql` import for the SQL provider, the transactions, and this
// package's own few statements (written with `?`). `openDatabase` is the
// one place that picks a driver.

import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** How long one statement may take on PostgreSQL. */
const ROUND_TRIP_TIMEOUT_MS = 10_000;

/** A value of the `sql` import (`n`, `i42`, `ttext`) as a driver binds it. */
function bound(value) {
  if (value[0] === 't') return value.slice(1);
  if (value[0] === 'i') return BigInt(value.slice(1));
  return null;
}

/** A column as the `sql` import answers it. */
function column(v) {
  if (v === null || v === undefined) return 'n';
  if (typeof v === 'bigint' || typeof v === 'number') return `i${v}`;
  if (typeof v === 'boolean') return v ? 'i1' : 'i0';
  return `t${v}`;
}

/** `dbPath` (a SQLite file) or `databaseUrl` (`postgresql://`). */
export function openDatabase({ dbPath, databaseUrl }) {
  if (databaseUrl) return new PostgresDatabase(databaseUrl);
  if (dbPath) return new SqliteDatabase(dbPath);
  throw new TypeError('ReclaimHost.open needs a dbPath (SQLite) or a databaseUrl (postgresql://)');
}

class SqliteDatabase {
  dialect = 'sqlite';
  #db;

  constructor(dbPath) {
    this.#db = new Database(dbPath, { timeout: 30_000 });
    // Nanosecond timestamps pass 2^53: every integer is read as a BigInt.
    this.#db.defaultSafeIntegers(true);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
  }

  /** The `sql` import. */
  get sql() {
    return {
      databaseDialect: () => this.dialect,
      execute: (statement, params) => BigInt(this.#db.prepare(statement).run(...params.map(bound)).changes),
      query: (statement, params) => this.#db.prepare(statement).raw(true).all(...params.map(bound))
        .map((row) => row.map(column)),
    };
  }

  /** One of this package's own statements: its rows, as objects. */
  run(statement, params = []) {
    const prepared = this.#db.prepare(statement);
    if (prepared.reader) return prepared.all(...params);
    prepared.run(...params);
    return [];
  }

  // The write lock at once: of several processes, one runs its operation
  // at a time, so each single-use step has one winner.
  begin() { this.#db.exec('BEGIN IMMEDIATE'); }
  commit() { this.#db.exec('COMMIT'); }
  rollback() { this.#db.exec('ROLLBACK'); }
  close() { this.#db.close(); }
}

/**
 * PostgreSQL, synchronously: jco calls the provider's imports as plain
 * functions and Node.js 20 has no JSPI to suspend for a promise, while
 * `pg` only answers in promises. So a worker thread owns the `pg` client,
 * and each statement waits on a shared flag (`Atomics.wait`) until the
 * worker has posted its answer. No crate or package does this for `pg`.
 */
class PostgresDatabase {
  dialect = 'postgresql';
  #port;
  #flag = new Int32Array(new SharedArrayBuffer(4));
  #worker;
  #lost = false;

  constructor(url) {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#worker = new Worker(new URL('./postgres-worker.mjs', import.meta.url), {
      workerData: { url, port: port2, flag: this.#flag },
      transferList: [port2],
    });
    // The worker's client must not keep the process alive once closed, and
    // a worker that died is found by the next statement's bounded wait.
    this.#worker.unref();
    this.#worker.on('error', () => {});
    this.#call({ connect: true });
  }

  #call(request) {
    if (this.#lost) throw new Error('PostgreSQL stopped answering this connection earlier');
    Atomics.store(this.#flag, 0, 0);
    this.#port.postMessage(request);
    // Bounded, as the Rust host bounds each round trip: a database (or a
    // worker) that stopped answering fails the operation, not the process.
    if (Atomics.wait(this.#flag, 0, 0, ROUND_TRIP_TIMEOUT_MS) === 'timed-out') {
      // Its answer may still come, and would be taken for the next one's.
      this.#lost = true;
      throw new Error(`PostgreSQL did not answer within ${ROUND_TRIP_TIMEOUT_MS / 1000} s`);
    }
    const { message } = receiveMessageOnPort(this.#port);
    if (message.error) throw new Error(`PostgreSQL: ${message.error}`);
    return message;
  }

  #statement(text, params, rowMode) {
    const values = params.map((p) => (typeof p === 'bigint' ? p.toString() : p));
    return this.#call({ text, values, rowMode });
  }

  /** The `sql` import: the provider writes `$1` placeholders itself. */
  get sql() {
    return {
      databaseDialect: () => this.dialect,
      execute: (statement, params) => BigInt(this.#statement(statement, params.map(bound)).rowCount ?? 0),
      query: (statement, params) => this.#statement(statement, params.map(bound), 'array').rows
        .map((row) => row.map(column)),
    };
  }

  /** One of this package's own statements, written with `?`. */
  run(statement, params = []) {
    let n = 0;
    return this.#statement(statement.replace(/\?/g, () => `$${++n}`), params).rows;
  }

  begin() { this.#call({ text: 'BEGIN' }); }
  commit() { this.#call({ text: 'COMMIT' }); }
  rollback() { this.#call({ text: 'ROLLBACK' }); }
  close() {
    this.#call({ end: true });
    this.#worker.terminate();
  }
}
