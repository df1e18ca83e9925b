// One of the racing processes of races.test.mjs: opens its own host on the
// shared database (`{ dbPath }` or `{ databaseUrl }`), warms up, then
// redeems each token it is sent.
import { ReclaimHost, RecoveryError } from '../src/host.mjs';

const host = await ReclaimHost.open({ ...JSON.parse(process.argv[2]), settings: JSON.parse(process.argv[3]) });
await host.checkLink('warm-up').catch(() => {});
process.on('message', async (token) => {
  if (token === null) {
    host.close();
    process.disconnect();
    return;
  }
  try {
    await host.redeemLink(token);
    process.send('ok');
  } catch (e) {
    process.send(e instanceof RecoveryError ? e.kind : String(e));
  }
});
process.send('ready');
