// A Node.js host for the Reclaim recovery component: the component file the
// Rust host embeds, transpiled by jco, with JavaScript implementations of its
// imports. Storage is a real SQLite file (better-sqlite3: WAL, one
// transaction per operation, safe across processes), mail goes to .eml
// files, and the clock reaches the component through WASI.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { instantiate } from '../gen/reclaim/reclaim.js';

const GENERATED = new URL('../gen/reclaim/', import.meta.url);

const SCHEMA = `
CREATE TABLE IF NOT EXISTS identities (
  pk INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, email TEXT,
  display_name TEXT, locale TEXT, active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS credentials (
  key TEXT PRIMARY KEY, kind TEXT NOT NULL, identity_id TEXT NOT NULL, flow_id TEXT NOT NULL UNIQUE,
  issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, return_to TEXT,
  used_at INTEGER, revoked_at INTEGER, failed_attempts INTEGER NOT NULL DEFAULT 0,
  address_key TEXT, last_failed_at INTEGER);
CREATE INDEX IF NOT EXISTS credentials_by_identity ON credentials (identity_id);
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY, recipient TEXT NOT NULL, to_name TEXT, subject TEXT NOT NULL,
  text_body TEXT NOT NULL, html_body TEXT NOT NULL, template TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued', queued_at INTEGER NOT NULL);
`;

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

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The mailer's checks against header injection. Not the Rust host's
 * (`host/src/mail/mod.rs`, `check`), which also parses the address as
 * RFC 5321 and caps the subject's length.
 */
function checkMessage(message) {
  const at = message.to.split('@');
  if (at.length !== 2 || !at[0] || !at[1] || /\s/.test(message.to) || CONTROL.test(message.to)) {
    return 'the recipient is not a deliverable email address';
  }
  if (message.toName !== undefined && CONTROL.test(message.toName)) {
    return "the recipient's name contains control characters";
  }
  if (!message.subject || CONTROL.test(message.subject)) {
    return 'the subject is empty or contains control characters';
  }
  return null;
}

/** `?` placeholders for a list. */
const marks = (n) => Array(n).fill('?').join(', ');

const CREDENTIAL = 'SELECT * FROM credentials';

export class ReclaimHost {
  #db;
  #outboxDir;
  #modules = new Map();

  /**
   * Opens (or creates) the SQLite file at `dbPath`. `settings`: `publicUrl`,
   * `secrets` (strings, newest first), `defaultLifespanSeconds`,
   * `maxLifespanSeconds`, `revokeOlderLinks`, `maxCodeAttempts`,
   * `maxCodeAttemptsPerIdentity`, `codeAttemptWindowSeconds`,
   * `notifyUnknownRecipients`.
   */
  static async open({ dbPath, outboxDir, settings, clock = new SystemClock(), observe, directory }) {
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
    host.#db = new Database(dbPath, { timeout: 30_000 });
    // Nanosecond timestamps pass 2^53: every integer is read as a BigInt.
    host.#db.defaultSafeIntegers(true);
    host.#db.pragma('journal_mode = WAL');
    host.#db.pragma('synchronous = FULL');
    host.#db.exec(SCHEMA);
    // Files made before credentials carried their address and latest wrong
    // code get the columns in place.
    const columns = new Set(host.#db.prepare('PRAGMA table_info(credentials)').all().map((c) => c.name));
    for (const column of ['address_key TEXT', 'last_failed_at INTEGER']) {
      if (!columns.has(column.split(' ')[0])) host.#db.exec(`ALTER TABLE credentials ADD COLUMN ${column}`);
    }
    host.#outboxDir = outboxDir;
    host.settings = settings;
    host.clock = clock;
    return host;
  }

  /** Closes the database. */
  close() {
    this.#db.close();
  }

  /** Adds an identity to the directory; returns it with `id` and `pk`. */
  async createIdentity({ email = null, displayName = null, locale = null, active = true }) {
    const id = randomUUID();
    this.#db.prepare('INSERT INTO identities (id, email, display_name, locale, active) VALUES (?, ?, ?, ?, ?)')
      .run(id, email, displayName, locale, active ? 1 : 0);
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
  async sendRecoveryEmail(identity, { expiresIn, template, subject } = {}) {
    return mailed(await this.#operation((e) => e.sendRecoveryEmail(identityRef(identity), expiresIn, template, subject)));
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
    return this.#db.prepare(sql).all(...params);
  }

  /**
   * One operation: a fresh instance inside one transaction, committed when
   * the component returns (ok or a refusal) and rolled back when it traps.
   * Queued mail is written out after the commit.
   */
  #inImports = 0;

  async #operation(call) {
    const started = performance.now();
    const exports = await instantiate((name) => this.#core(name), this.#imports());
    const instantiated = performance.now();
    this.#inImports = 0;
    // From BEGIN to COMMIT nothing awaits: operations of one process never
    // interleave, and other processes wait on SQLite's write lock.
    this.#db.exec('BEGIN IMMEDIATE');
    const begun = performance.now();
    let result;
    try {
      result = { value: call(exports.recovery) };
    } catch (e) {
      if (e && Object.hasOwn(e, 'payload')) {
        result = { error: new RecoveryError(e.payload) };
      } else {
        this.#db.exec('ROLLBACK');
        throw e;
      }
    }
    const called = performance.now();
    this.#db.exec('COMMIT');
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

  async #core(name) {
    if (!this.#modules.has(name)) {
      this.#modules.set(name, WebAssembly.compile(await readFile(new URL(name, GENERATED))));
    }
    return this.#modules.get(name);
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

  #credential(row) {
    return {
      key: row.key,
      kind: row.kind,
      identityId: row.identity_id,
      flowId: row.flow_id,
      issuedAt: BigInt(row.issued_at),
      expiresAt: BigInt(row.expires_at),
      returnTo: row.return_to ?? undefined,
      addressKey: row.address_key ?? undefined,
    };
  }

  #state(row, now) {
    if (row.used_at !== null) return 'used';
    if (row.revoked_at !== null) return 'revoked';
    if (BigInt(row.expires_at) <= now) return 'expired';
    return 'active';
  }

  /** The component's imports, plus WASI with our clock and nothing else. */
  #imports() {
    const db = this.#db;
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
    // The number of rows a statement changed.
    const sql = (s, p) => db.prepare(s).run(...p).changes;
    const own = {
      'reclaim:recovery/directory': {
        getById: (id) => (host.directory
          ? ReclaimHost.#fromDirectory(host.directory.getById(id))
          : host.#identity('id = ?', id)),
        getByPk: (pk) => (host.directory
          ? ReclaimHost.#fromDirectory(host.directory.getByPk(Number(pk)))
          : host.#identity('pk = ?', Number(pk))),
        findByEmail: (email) => (host.directory
          ? ReclaimHost.#fromDirectory(host.directory.findByEmail(email))
          : host.#identity('lower(email) = lower(?)', email)),
      },
      'reclaim:recovery/storage': {
        insert(c) {
          sql('INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to, address_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
            c.key, c.kind, c.identityId, c.flowId, c.issuedAt, c.expiresAt, c.returnTo ?? null, c.addressKey ?? null,
          ]);
        },
        consume(keys, kind, now, maxFailed) {
          // The guard is in the UPDATE: under the write lock, one caller wins.
          const won = sql(`UPDATE credentials SET used_at = ? WHERE kind = ? AND used_at IS NULL AND revoked_at IS NULL
               AND expires_at > ? AND failed_attempts < ? AND key IN (${marks(keys.length)})`,
          [now, kind, now, maxFailed, ...keys]) === 1;
          const [row] = host.query(`${CREDENTIAL} WHERE kind = ? AND key IN (${marks(keys.length)})`, [kind, ...keys]);
          if (!row) return { tag: 'unknown' };
          if (won) return { tag: 'consumed', val: host.#credential(row) };
          const state = host.#state(row, now);
          return { tag: 'not-active', val: state === 'active' ? 'revoked' : state };
        },
        find(keys, kind, now) {
          const [row] = host.query(`${CREDENTIAL} WHERE kind = ? AND key IN (${marks(keys.length)})`, [kind, ...keys]);
          if (!row) return undefined;
          return { credential: host.#credential(row), state: host.#state(row, now), failedAttempts: Number(row.failed_attempts) };
        },
        codeForFlow(flowId, now) {
          const [row] = host.query(`${CREDENTIAL} WHERE flow_id = ? AND kind = 'code'`, [flowId]);
          if (!row) return undefined;
          return { credential: host.#credential(row), state: host.#state(row, now), failedAttempts: Number(row.failed_attempts) };
        },
        recordFailedAttempt(flowId, maxFailed, now) {
          sql(`UPDATE credentials SET failed_attempts = failed_attempts + 1, last_failed_at = ?,
               revoked_at = CASE WHEN failed_attempts + 1 >= ? AND revoked_at IS NULL AND used_at IS NULL THEN ? ELSE revoked_at END
               WHERE flow_id = ? AND kind = 'code'`, [now, maxFailed, now, flowId]);
          const [row] = host.query("SELECT failed_attempts FROM credentials WHERE flow_id = ? AND kind = 'code'", [flowId]);
          return row ? Number(row.failed_attempts) : maxFailed;
        },
        identityFailedAttempts(identityId, since) {
          // Every operation is one immediate transaction: nothing else
          // counts for the identity until this one commits.
          const [row] = host.query(`SELECT coalesce(sum(failed_attempts), 0) AS n FROM credentials
               WHERE identity_id = ? AND kind = 'code' AND last_failed_at > ?`, [identityId, since]);
          return Number(row.n);
        },
        revokeIdentity(identityId, kind, now) {
          return sql(`UPDATE credentials SET revoked_at = ? WHERE identity_id = ? AND used_at IS NULL AND revoked_at IS NULL
               AND expires_at > ? AND (? IS NULL OR kind = ?)`, [now, identityId, now, kind ?? null, kind ?? null]);
        },
      },
      'reclaim:recovery/mailer': {
        queue(message) {
          const refused = checkMessage(message);
          // A thrown string is the `err` of `result<_, string>`.
          if (refused) throw refused;
          sql('INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
            randomUUID(), message.to, message.toName ?? null, message.subject, message.textBody, message.htmlBody, message.template,
            clock.nowNanos(),
          ]);
        },
      },
      'reclaim:recovery/settings': {
        get() {
          const s = host.settings;
          return {
            publicUrl: s.publicUrl,
            defaultLifespanNs: BigInt(s.defaultLifespanSeconds ?? 3600) * 1_000_000_000n,
            maxLifespanNs: BigInt(s.maxLifespanSeconds ?? 86400) * 1_000_000_000n,
            secrets: s.secrets.map((secret) => new TextEncoder().encode(secret)),
            revokeOlderLinks: s.revokeOlderLinks ?? true,
            maxCodeAttempts: s.maxCodeAttempts ?? 5,
            maxCodeAttemptsPerIdentity: s.maxCodeAttemptsPerIdentity ?? 10,
            codeAttemptWindowNs: BigInt(s.codeAttemptWindowSeconds ?? 3600) * 1_000_000_000n,
            notifyUnknownRecipients: s.notifyUnknownRecipients ?? false,
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
        'From: Reclaim <no-reply@localhost>', `To: ${to}`, `Subject: ${m.subject}`,
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
      this.#db.prepare("UPDATE outbox SET status = 'sent' WHERE id = ? AND status = 'queued'").run(m.id);
    }
  }
}
