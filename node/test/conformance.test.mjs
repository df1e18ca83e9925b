// The host-neutral scenarios of tests/conformance/, run through this Node.js
// host on SQLite and on PostgreSQL. The Rust host runs the same files; all
// must agree on every step.
import { test } from 'node:test';
import { scratch } from './scratch.mjs';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock, ReclaimHost, RecoveryError } from '../src/host.mjs';
import { freshDatabase } from './postgres.mjs';

const scenarios = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tests/conformance');

async function outcome(promise, onOk) {
  try {
    return { ok: true, ...onOk(await promise) };
  } catch (e) {
    if (e instanceof RecoveryError) return { error: e.kind, code: e.code };
    throw e;
  }
}

async function run(file, where) {
  const scenario = JSON.parse(await readFile(path.join(scenarios, file), 'utf8'));
  const clock = new ManualClock(scenario.clock);
  const s = scenario.settings;
  const host = await ReclaimHost.open({
    ...where,
    clock,
    settings: {
      publicUrl: 'https://id.example.test',
      secrets: s.secrets,
      defaultLifespanSeconds: s.default_lifespan,
      maxLifespanSeconds: s.max_lifespan,
      revokeOlderLinks: s.revoke_older_links,
      maxCodeAttempts: s.max_code_attempts,
    },
  });
  const ids = {};
  for (const [name, spec] of Object.entries(scenario.identities)) {
    ids[name] = await host.createIdentity({ email: spec.email, displayName: name, locale: spec.locale, active: spec.active });
  }
  const nameOf = (id) => Object.entries(ids).find(([, i]) => i.id === id)[0];
  const saved = {};
  for (const [i, step] of scenario.steps.entries()) {
    const context = `${file} step ${i}: ${JSON.stringify(step)}`;
    const who = () => step.identity !== undefined
      ? ids[step.identity].id
      : step.identity_id !== undefined ? step.identity_id : step.identity_pk;
    const now = Number(clock.nowNanos() / 1_000_000n);
    const lifespan = (expiresAt) => (expiresAt - now) / 1000;
    let got;
    switch (step.op) {
      case 'create-link':
        got = await outcome(host.createLink(who(), { expiresIn: step.expires_in }), (link) => {
          if (step.as) saved[step.as] = [link.link.split('token=')[1], link.flowId];
          return { lifespan: lifespan(link.expiresAt) };
        });
        break;
      case 'create-code':
        got = await outcome(host.createCode(who(), { expiresIn: step.expires_in }), (code) => {
          if (step.as) saved[step.as] = [code.code, code.flowId];
          return { lifespan: lifespan(code.expiresAt) };
        });
        break;
      case 'send-recovery-email':
        got = await outcome(host.sendRecoveryEmail(who(), { expiresIn: step.expires_in, template: step.template, sender: step.sender }), (mailed) => ({
          lifespan: lifespan(mailed.expiresAt),
        }));
        break;
      case 'redeem-link': {
        const token = step.token_of !== undefined ? saved[step.token_of][0] : step.token;
        got = await outcome(host.redeemLink(token), (r) => ({ identity: nameOf(r.identityId) }));
        break;
      }
      case 'redeem-code': {
        let [code, flow] = saved[step.code_of];
        if (step.wrong) code = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
        else if (step.code !== undefined) code = step.code;
        if (step.flow !== undefined) flow = step.flow;
        got = await outcome(host.redeemCode(flow, code), (r) => ({ identity: nameOf(r.identityId) }));
        break;
      }
      case 'revoke':
        got = await outcome(host.revoke(who()), (n) => ({ revoked: n }));
        break;
      case 'advance':
        clock.advance(step.seconds);
        continue;
      case 'set-secrets':
        host.settings = { ...host.settings, secrets: step.secrets };
        continue;
      case 'expect_mail':
        assert.equal(Number(host.query('SELECT count(*) AS n FROM outbox')[0].n), step.count, context);
        if (step.sender !== undefined) {
          assert.equal(Number(host.query('SELECT count(*) AS n FROM outbox WHERE sender = ?', [step.sender])[0].n), 1, context);
        }
        continue;
      default:
        throw new Error(`unknown op in ${context}`);
    }
    for (const [key, want] of Object.entries(step.expect)) {
      assert.deepEqual(got[key], want, `${key} differs: got ${JSON.stringify(got)}\n${context}`);
    }
  }
}

const files = (await readdir(scenarios)).filter((f) => f.endsWith('.json')).sort();

test('the conformance scenarios are there', () => {
  assert.ok(files.length >= 6);
});

for (const file of files) {
  test(`conformance: ${file}`, async () => run(file, { dbPath: path.join(await scratch('reclaim-conformance-'), 'reclaim.db') }));
  test(`conformance on PostgreSQL: ${file}`, async () => run(file, { databaseUrl: await freshDatabase() }));
}
