// The worker behind database.mjs's PostgresDatabase: owns the `pg` client,
// runs each statement it is sent, posts the answer and wakes the caller.
import { workerData } from 'node:worker_threads';

const { url, port, flag } = workerData;
let client;

async function answer(request) {
  if (request.connect) {
    let pg;
    try {
      pg = (await import('pg')).default;
    } catch {
      throw new Error('a databaseUrl needs the `pg` package: npm install pg');
    }
    client = new pg.Client({ connectionString: url });
    // A connection lost between statements: the next one fails with it.
    client.on('error', () => {});
    await client.connect();
    return {};
  }
  if (request.end) {
    await client.end();
    return {};
  }
  const result = await client.query({ text: request.text, values: request.values, rowMode: request.rowMode });
  return { rows: result.rows ?? [], rowCount: result.rowCount };
}

port.on('message', async (request) => {
  let message;
  try {
    message = await answer(request);
  } catch (e) {
    message = { error: e.message };
  }
  port.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
