// Types of the package's API: plain strings and numbers in and out.
import type { ErrorKind } from './gen/reclaim/interfaces/reclaim-recovery-types.js';

export type { ErrorKind };

/** An identity: its id, or its integer pk. */
export type IdentityRef = string | number;

/** An identity of the directory. */
export interface Identity {
  /** A UUID. */
  id: string;
  pk: number;
  email: string | null;
  displayName: string | null;
  locale: string | null;
  active: boolean;
}

export interface RecoveryLink {
  link: string;
  flowId: string;
  /** Milliseconds since the epoch, as `Date.now()`. */
  expiresAt: number;
}

export interface RecoveryCode {
  /** The flow's page, where the code is entered. */
  link: string;
  /** Six digits. */
  code: string;
  flowId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** A message queued for the identity. */
export interface Mailed {
  flowId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface Redemption {
  identityId: string;
  flowId: string;
  /** The allowed `return_to` the credential was issued with. */
  returnTo: string | null;
}

/** What the component sees as `wasi:clocks/wall-clock`. */
export interface Clock {
  nowNanos(): bigint;
}

/** The operating system's clock. */
export class SystemClock implements Clock {
  nowNanos(): bigint;
}

/** A clock that stands still until told to move. */
export class ManualClock implements Clock {
  constructor(seconds: number);
  nowNanos(): bigint;
  advance(seconds: number): void;
}

/** The component refused the request; `kind` and `code` say why. */
export class RecoveryError extends Error {
  kind: ErrorKind;
  code: number;
  status: string;
  reason: string;
}

/** What a tunable leaves out takes the component's default (`wit/recovery.wit`). */
export interface Settings {
  publicUrl: string;
  /** Newest first; at least 32 bytes each. */
  secrets: string[];
  defaultLifespanSeconds?: number;
  maxLifespanSeconds?: number;
  revokeOlderLinks?: boolean;
  maxCodeAttempts?: number;
  /** Wrong codes an identity survives across its flows. */
  maxCodeAttemptsPerIdentity?: number;
  /** The window of `maxCodeAttemptsPerIdentity`, in seconds. */
  codeAttemptWindowSeconds?: number;
  notifyUnknownRecipients?: boolean;
}

/** A user as a directory answers it. */
export interface DirectoryUser {
  /** A UUID. */
  id: string;
  pk: number;
  email?: string;
  displayName?: string;
  locale?: string;
  active: boolean;
}

/** An embedder's own user store. */
export interface Directory {
  getById(id: string): DirectoryUser | null | undefined;
  getByPk(pk: number): DirectoryUser | null | undefined;
  findByEmail(email: string): DirectoryUser | null | undefined;
}

export interface OpenOptions {
  /** The SQLite file: created if missing, shared safely between processes. */
  dbPath?: string;
  /**
   * A PostgreSQL database in place of the file (`postgresql://...`, through
   * the optional `pg` package), shared safely between processes and machines.
   */
  databaseUrl?: string;
  /** Where queued mail is written as `.eml` files after each commit. */
  outboxDir?: string;
  settings: Settings;
  clock?: Clock;
  /**
   * Called after each operation with each phase and its milliseconds:
   * `instantiate`, `component` (the export, less the imports), `imports`
   * (this host's callbacks) and `commit`.
   */
  observe?: (phase: 'instantiate' | 'component' | 'imports' | 'commit', ms: number) => void;
  /**
   * Your own users in place of the `identities` table, consulted inside
   * each operation's transaction; a throw rolls the operation back.
   */
  directory?: Directory;
}

/** The recovery component on one SQLite file. */
export class ReclaimHost {
  static open(options: OpenOptions): Promise<ReclaimHost>;
  settings: Settings;
  clock: Clock;
  close(): void;
  createIdentity(identity: {
    email?: string; displayName?: string; locale?: string; active?: boolean;
  }): Promise<Identity>;
  createLink(identity: IdentityRef, options?: { expiresIn?: string; returnTo?: string }): Promise<RecoveryLink>;
  createCode(identity: IdentityRef, options?: { expiresIn?: string; returnTo?: string }): Promise<RecoveryCode>;
  sendRecoveryEmail(
    identity: IdentityRef,
    /** `sender`: `address` or `Name <address>` (authentik's email stage `from`), replacing the configured one. */
    options?: { expiresIn?: string; template?: string; subject?: string; sender?: string },
  ): Promise<Mailed>;
  sendRecoveryCode(identity: IdentityRef, options?: { expiresIn?: string }): Promise<Mailed>;
  requestRecovery(email: string, options?: { returnTo?: string }): Promise<void>;
  redeemLink(token: string): Promise<Redemption>;
  checkLink(token: string): Promise<void>;
  redeemCode(flowId: string, code: string): Promise<Redemption>;
  /** How many links and codes were revoked. */
  revoke(identity: IdentityRef): Promise<number>;
  notifyPasswordChanged(identity: IdentityRef): Promise<void>;
  /** Rows of a query, for tools and tests. */
  query(sql: string, params?: unknown[]): Record<string, unknown>[];
}
