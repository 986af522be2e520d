// Starts NocoDB on 127.0.0.1:PORT for daybook's tests; its metadata (SQLite noco.db) goes in
// the working folder.
process.env.NC_DISABLE_TELE = 'true';
const express = require('express');
const { Noco } = require('nocodb');
(async () => {
  const app = express();
  const port = Number(process.env.PORT || 18080);
  const server = app.listen(port, '127.0.0.1');
  app.use(await Noco.init({}, server, app));
  console.log(`nocodb listening on 127.0.0.1:${port}`);
})().catch((e) => { console.error(e); process.exit(1); });
