// A Node.js host for the Reclaim recovery component: the component file the
// Rust host embeds for SQL hosts (`reclaim component --sql`: the engine
// composed with the SQL provider, whose statements answer its storage,
// outbox and default directory), transpiled by jco. This host runs those
// statements on its database (database.mjs: a SQLite file or PostgreSQL,
// one transaction per operation, safe across processes); mail goes to .eml
// files, and the clock reaches the component through WASI.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { openDatabase } from './database.mjs';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { instantiate } from '../gen/reclaim/reclaim.js';

const GENERATED = new URL('../gen/reclaim/', import.meta.url);

/** The operating system's clock. */
export class SystemClock {
  nowNanos() {
    return BigInt(Date.now()) * 1_000_000n;
  }
}

/** A clock that stands still until told to move. */
export class ManualClock {
  constructor(seconds) {
    this.nanos = BigInt(seconds) * 1_000_000_000n;
  }
  nowNanos() {
    return this.nanos;
  }
  advance(seconds) {
    this.nanos += BigInt(seconds) * 1_000_000_000n;
  }
}

/** The component refused the request; `kind` and `code` say why. */
export class RecoveryError extends Error {
  constructor(error) {
    super(error.message);
    Object.assign(this, { kind: error.kind, code: error.code, status: error.status, reason: error.reason });
  }
}

/** `identity` as the component takes it: an id (string) or a pk (integer). */
function identityRef(identity) {
  if (typeof identity === 'string') return { tag: 'id', val: identity };
  if (typeof identity === 'bigint') return { tag: 'pk', val: identity };
  if (Number.isSafeInteger(identity)) return { tag: 'pk', val: BigInt(identity) };
  throw new TypeError(`an identity is its id (a string) or its pk (an integer), not ${typeof identity}`);
}

/** Nanoseconds since the epoch (the component's timestamps) in milliseconds. */
const millis = (nanos) => Number(nanos / 1_000_000n);

const mailed = (r) => ({ flowId: r.flowId, expiresAt: millis(r.expiresAt) });
const redemption = (r) => ({ identityId: r.identityId, flowId: r.flowId, returnTo: r.returnTo ?? null });

/** An identity as the package answers it: plain numbers, absent values null. */
const plainIdentity = (i) => i && ({
  id: i.id,
  pk: Number(i.pk),
  email: i.email ?? null,
  displayName: i.displayName ?? null,
  locale: i.locale ?? null,
  active: i.active,
});

/** Whole seconds as nanoseconds; undefined stays undefined. */
function nanos(seconds) {
  return seconds === undefined || seconds === null ? undefined : BigInt(seconds) * 1_000_000_000n;
}

export class ReclaimHost {
  #db;
  #outboxDir;
  #modules = new Map();

  /**
   * Opens (or creates) the SQLite file at `dbPath`, or the PostgreSQL
   * database at `databaseUrl` (the optional `pg` package). `settings`: `publicUrl`,
   * `secrets` (strings, newest first), `defaultLifespanSeconds`,
   * `maxLifespanSeconds`, `revokeOlderLinks`, `maxCodeAttempts`,
   * `maxCodeAttemptsPerIdentity`, `codeAttemptWindowSeconds`,
   * `notifyUnknownRecipients`.
   */
  static async open({ dbPath, databaseUrl, outboxDir, settings, clock = new SystemClock(), observe, directory }) {
    const host = new ReclaimHost();
    // Called after each operation with each phase and its milliseconds:
    // instantiate, component (the export, less the imports), imports (this
    // host's callbacks: SQLite and the rest), commit.
    host.observe = observe;
    // Your own users, in place of the `identities` table: an object with
    // getById(id), getByPk(pk) and findByEmail(email), each answering
    // { id, pk, email?, displayName?, locale?, active } or null. It is
    // consulted inside each operation's transaction; a throw rolls the
    // operation back.
    host.directory = directory;
    host.#db = openDatabase({ dbPath, databaseUrl });
    host.#outboxDir = outboxDir;
    host.settings = settings;
    host.clock = clock;
    // The provider's tables, made or migrated in a transaction of their own.
    const exports = await host.#instance();
    host.#db.begin();
    try {
      exports.schema.migrate();
    } catch (e) {
      host.#db.rollback();
      throw e;
    }
    host.#db.commit();
    return host;
  }

  /** Closes the database. */
  close() {
    this.#db.close();
  }

  /** Adds an identity to the directory; returns it with `id` and `pk`. */
  async createIdentity({ email = null, displayName = null, locale = null, active = true }) {
    const id = randomUUID();
    this.#db.run('INSERT INTO identities (id, email, display_name, locale, active, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      [id, email, displayName, locale, active ? 1 : 0, BigInt(Date.now()) * 1_000_000n]);
    return plainIdentity(this.#identity('id = ?', id));
  }

  // The operations. `identity` is its id (a string) or its pk (an
  // integer); options are named; answers are plain strings and numbers,
  // times in milliseconds since the epoch, as `Date.now()` gives them.

  /** A recovery link, as Kratos' `POST /admin/recovery/link`. */
  async createLink(identity, { expiresIn, returnTo } = {}) {
    const r = await this.#operation((e) => e.createLink(identityRef(identity), expiresIn, returnTo));
    return { link: r.link, flowId: r.flowId, expiresAt: millis(r.expiresAt) };
  }
  /** A six-digit code and the link of its flow, as Kratos' `POST /admin/recovery/code`. */
  async createCode(identity, { expiresIn, returnTo } = {}) {
    const r = await this.#operation((e) => e.createCode(identityRef(identity), expiresIn, returnTo));
    return { link: r.link, code: r.code, flowId: r.flowId, expiresAt: millis(r.expiresAt) };
  }
  /** Mails a recovery link, as authentik's `recovery_email`. */
  async sendRecoveryEmail(identity, { expiresIn, template, subject, sender } = {}) {
    return mailed(await this.#operation((e) => e.sendRecoveryEmail(identityRef(identity), expiresIn, template, subject, sender)));
  }
  /** Mails a recovery code. */
  async sendRecoveryCode(identity, { expiresIn } = {}) {
    return mailed(await this.#operation((e) => e.sendRecoveryCode(identityRef(identity), expiresIn)));
  }
  /** A self-service request by address: the same answer for every address. */
  async requestRecovery(email, { returnTo } = {}) {
    await this.#operation((e) => e.requestRecovery(email, returnTo));
  }
  /** Redeems a link's token, once. */
  async redeemLink(token) {
    return redemption(await this.#operation((e) => e.redeemLink(token)));
  }
  /** Throws what `redeemLink` would, consuming nothing. */
  async checkLink(token) {
    await this.#operation((e) => e.checkLink(token));
  }
  /** Redeems a flow's code, once; wrong codes count against the flow. */
  async redeemCode(flowId, code) {
    return redemption(await this.#operation((e) => e.redeemCode(flowId, code)));
  }
  /** Tells the identity its password was changed. */
  async notifyPasswordChanged(identity) {
    await this.#operation((e) => e.notifyPasswordChanged(identityRef(identity)));
  }
  /** Revokes every outstanding link and code; returns how many. */
  async revoke(identity) {
    return this.#operation((e) => e.revoke(identityRef(identity)));
  }

  /** Rows of a query, for tests and tools. */
  query(sql, params = []) {
    return this.#db.run(sql, params);
  }

  /**
   * One operation: a fresh instance inside one transaction, committed when
   * the component returns (ok or a refusal) and rolled back when it traps.
   * Queued mail is written out after the commit.
   */
  #inImports = 0;

  async #operation(call) {
    const started = performance.now();
    const exports = await this.#instance();
    const instantiated = performance.now();
    this.#inImports = 0;
    // From BEGIN to COMMIT nothing awaits: operations of one process never
    // interleave, and other processes wait on SQLite's write lock.
    this.#db.begin();
    const begun = performance.now();
    let result;
    try {
      result = { value: call(exports.recovery) };
    } catch (e) {
      if (e && Object.hasOwn(e, 'payload')) {
        result = { error: new RecoveryError(e.payload) };
      } else {
        this.#db.rollback();
        throw e;
      }
    }
    const called = performance.now();
    this.#db.commit();
    const committed = performance.now();
    if (this.observe) {
      this.observe('instantiate', instantiated - started);
      this.observe('component', called - begun - this.#inImports);
      this.observe('imports', this.#inImports);
      this.observe('commit', (begun - instantiated) + (committed - called));
    }
    await this.#deliver();
    if (result.error) throw result.error;
    return result.value;
  }

  /** A fresh instance of the component. */
  #instance() {
    return instantiate((name) => this.#core(name), this.#imports());
  }

  async #core(name) {
    const file = new URL(name, GENERATED);
    if (!this.#modules.has(file.href)) {
      this.#modules.set(file.href, WebAssembly.compile(await readFile(file)));
    }
    return this.#modules.get(file.href);
  }

  /** A user from the embedder's directory, as the component takes it. */
  static #fromDirectory(user) {
    if (user === null || user === undefined) return undefined;
    return {
      id: String(user.id),
      pk: BigInt(user.pk),
      email: user.email ?? undefined,
      displayName: user.displayName ?? undefined,
      locale: user.locale ?? undefined,
      active: Boolean(user.active),
    };
  }

  #identity(where, value) {
    const [row] = this.query(`SELECT id, pk, email, display_name, locale, active FROM identities WHERE ${where}`, [value]);
    if (!row) return undefined;
    return {
      id: row.id,
      pk: BigInt(row.pk),
      email: row.email ?? undefined,
      displayName: row.display_name ?? undefined,
      locale: row.locale ?? undefined,
      active: Number(row.active) === 1,
    };
  }

  /**
   * The component's imports: the `sql` connection, your directory and
   * mailer when you gave them (`host-options` tells the provider whether),
   * our settings, and WASI with our clock and nothing else.
   */
  #imports() {
    const host = this;
    const clock = this.clock;
    const wasi = new WASIShim({ sandbox: { preopens: {}, env: {}, args: ['reclaim'], enableNetwork: false } }).getImportObject();
    wasi['wasi:clocks/wall-clock'] = {
      now() {
        const nanos = clock.nowNanos();
        return { seconds: nanos / 1_000_000_000n, nanoseconds: Number(nanos % 1_000_000_000n) };
      },
      resolution() {
        return { seconds: 0n, nanoseconds: 1 };
      },
    };
    const unplugged = () => {
      throw new Error('the provider asked for an import this host did not plug in');
    };
    const own = {
      'reclaim:recovery/sql': this.#db.sql,
      'reclaim:recovery/host-options': {
        get: () => ({ ownDirectory: Boolean(host.directory), ownMailer: false }),
      },
      'reclaim:recovery/directory': {
        getById: (id) => ReclaimHost.#fromDirectory(host.directory.getById(id)),
        getByPk: (pk) => ReclaimHost.#fromDirectory(host.directory.getByPk(Number(pk))),
        findByEmail: (email) => ReclaimHost.#fromDirectory(host.directory.findByEmail(email)),
      },
      'reclaim:recovery/mailer': { queue: unplugged },
      'reclaim:recovery/settings': {
        get() {
          const s = host.settings;
          return {
            publicUrl: s.publicUrl,
            // What the caller leaves out is left to the component's
            // defaults (wit/recovery.wit, `settings`).
            defaultLifespanNs: nanos(s.defaultLifespanSeconds),
            maxLifespanNs: nanos(s.maxLifespanSeconds),
            secrets: s.secrets.map((secret) => new TextEncoder().encode(secret)),
            revokeOlderLinks: s.revokeOlderLinks,
            maxCodeAttempts: s.maxCodeAttempts,
            maxCodeAttemptsPerIdentity: s.maxCodeAttemptsPerIdentity,
            codeAttemptWindowNs: nanos(s.codeAttemptWindowSeconds),
            notifyUnknownRecipients: s.notifyUnknownRecipients,
          };
        },
        template: () => undefined,
      },
    };
    const imports = { ...wasi };
    for (const [name, funcs] of Object.entries(own)) {
      const timed = Object.fromEntries(Object.entries(funcs).map(([f, fn]) => [f, (...args) => {
        const started = performance.now();
        try {
          return fn(...args);
        } finally {
          host.#inImports += performance.now() - started;
        }
      }]));
      imports[name] = timed;
      imports[`${name}@0.1.0`] = timed;
    }
    return imports;
  }

  /** Writes queued mail as .eml files, then marks it sent. */
  async #deliver() {
    if (!this.#outboxDir) return;
    await mkdir(this.#outboxDir, { recursive: true });
    for (const m of this.query("SELECT * FROM outbox WHERE status = 'queued' ORDER BY queued_at")) {
      const boundary = `reclaim-${m.id.replaceAll('-', '')}`;
      const to = m.to_name ? `"${m.to_name.replaceAll('"', '')}" <${m.recipient}>` : m.recipient;
      const eml = [
        `From: ${m.sender ?? 'Reclaim <no-reply@localhost>'}`, `To: ${to}`, `Subject: ${m.subject}`,
        `Date: ${new Date(Number(BigInt(m.queued_at) / 1_000_000n)).toUTCString()}`,
        `Message-ID: <${m.id}@localhost>`, 'MIME-Version: 1.0',
        `Content-Type: multipart/alternative; boundary="${boundary}"`, '',
        `--${boundary}`, 'Content-Type: text/plain; charset=utf-8', '', m.text_body,
        `--${boundary}`, 'Content-Type: text/html; charset=utf-8', '', m.html_body, `--${boundary}--`, '',
      ].join('\r\n');
      const file = path.join(this.#outboxDir, `${m.id}.eml`);
      // Two processes may deliver the same row at once: each writes under a
      // name of its own, and the second rename puts the same bytes in place.
      const partial = `${file}.${randomUUID()}.partial`;
      await writeFile(partial, eml);
      await rename(partial, file);
      this.#db.run("UPDATE outbox SET status = 'sent' WHERE id = ? AND status = 'queued'", [m.id]);
    }
  }
}
