// Starts NocoDB on 127.0.0.1:PORT for daybook's tests; its metadata (SQLite noco.db) and
// uploads go in the working folder. With NOCODB_EPHEMERAL=1 it stops, and removes that
// folder, when its stdin closes: the test process that started it has ended, however.
process.env.NC_DISABLE_TELE = 'true';
const express = require('express');
const { Noco } = require('nocodb');
if (process.env.NOCODB_EPHEMERAL === '1') {
  process.stdin.on('end', () => {
    try { require('fs').rmSync(process.cwd(), { recursive: true, force: true }); } finally { process.exit(0); }
  });
  process.stdin.resume();
}
(async () => {
  const app = express();
  const port = Number(process.env.PORT || 18080);
  const server = app.listen(port, '127.0.0.1');
  app.use(await Noco.init({}, server, app));
  console.log(`nocodb listening on 127.0.0.1:${port}`);
})().catch((e) => { console.error(e); process.exit(1); });
