// Drives the emulator with unmodified jsforce (npm, see package.json): every login flow,
// identity, CRUD, query paging, sObject Collections, Bulk 2.0 ingest and query.
// Input: the emulator's `--json` connection facts on stdin. Output: one JSON line per
// check ({"check": name, "ok": true, ...}); exits non-zero on the first failure.
// The emulator's CA reaches node through NODE_EXTRA_CA_CERTS (read at start-up).
import { readFileSync } from "node:fs";
import { createSign } from "node:crypto";
import jsforce from "jsforce";

const facts = JSON.parse(readFileSync(0, "utf8"));
const version = "59.0";
const report = (check, extra = {}) => console.log(JSON.stringify({ check, ok: true, ...extra }));
const fail = (check, err) => {
  console.log(JSON.stringify({ check, ok: false, error: String(err && err.stack || err) }));
  process.exit(1);
};
const expect = (check, cond, detail) => { if (!cond) fail(check, `expectation failed: ${JSON.stringify(detail)}`); };
const b64url = (s) => Buffer.from(s).toString("base64url");

async function step(name, fn) {
  try { await fn(); } catch (err) { fail(name, err); }
}

const oauth2 = new jsforce.OAuth2({
  loginUrl: facts.login_url, clientId: facts.client_id, clientSecret: facts.client_secret,
  redirectUri: `${facts.login_url}/callback`,
});
let conn;

await step("login-password", async () => {
  conn = new jsforce.Connection({ oauth2, version });
  const info = await conn.login(facts.username, facts.password);
  expect("login-password", info.organizationId && info.id, info);
  report("login-password", { userId: info.id });
});

await step("login-refresh-token", async () => {
  const c = new jsforce.Connection({ oauth2, version, instanceUrl: facts.instance_url,
    refreshToken: facts.refresh_token });
  const res = await oauth2.refreshToken(facts.refresh_token);
  expect("login-refresh-token", res.access_token && res.instance_url === facts.instance_url, res);
  report("login-refresh-token");
});

await step("login-jwt", async () => {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "RS256" }));
  const claims = b64url(JSON.stringify({ iss: facts.client_id, sub: facts.username,
    aud: facts.login_url, exp: now + 180 }));
  const signer = createSign("RSA-SHA256");
  signer.update(`${head}.${claims}`);
  const assertion = `${head}.${claims}.${signer.sign(readFileSync(facts.private_key_file), "base64url")}`;
  const c = new jsforce.Connection({ oauth2, version });
  const info = await c.authorize({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion });
  expect("login-jwt", info.organizationId, info);
  report("login-jwt");
});

await step("login-client-credentials", async () => {
  const c = new jsforce.Connection({ oauth2, version });
  const info = await c.authorize({ grant_type: "client_credentials" });
  expect("login-client-credentials", info.organizationId, info);
  report("login-client-credentials");
});

await step("identity", async () => {
  const id = await conn.identity();
  expect("identity", id.username === facts.username, id);
  report("identity", { username: id.username });
});

await step("crud", async () => {
  const acct = await conn.sobject("Account").create({ Name: "Acme" });
  const created = await conn.sobject("Contact").create({ LastName: "Lovelace", AccountId: acct.id });
  expect("crud", created.success, created);
  await conn.sobject("Contact").update({ Id: created.id, Title: "Analyst", DoNotCall: true });
  const got = await conn.sobject("Contact").retrieve(created.id);
  expect("crud", got.Title === "Analyst" && got.DoNotCall === true, got);
  const del = await conn.sobject("Contact").destroy(created.id);
  expect("crud", del.success, del);
  report("crud");
});

await step("query-paging", async () => {
  const res = await fetch(`${facts.control_url}/seed`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ contacts: 4500, leads: 0 }) });
  expect("query-paging", res.ok, res.status);
  const first = await conn.query("SELECT Id, Name FROM Contact");
  expect("query-paging", !first.done && first.nextRecordsUrl, { done: first.done });
  const all = await conn.query("SELECT Id, Name, Account.Name FROM Contact")
    .run({ autoFetch: true, maxFetch: 100000 });
  expect("query-paging", all.totalSize >= 4500 && all.records.length === all.totalSize,
    { totalSize: all.totalSize, got: all.records.length });
  report("query-paging", { records: all.records.length });
});

await step("collections", async () => {
  const made = await conn.sobject("Contact").create(
    [{ LastName: "A" }, { LastName: "B" }, { LastName: "C" }], { allOrNone: true });
  expect("collections", made.every((r) => r.success), made);
  const upd = await conn.sobject("Contact").update(made.map((r) => ({ Id: r.id, Title: "T" })));
  expect("collections", upd.every((r) => r.success), upd);
  const gone = await conn.sobject("Contact").destroy(made.map((r) => r.id));
  expect("collections", gone.every((r) => r.success), gone);
  report("collections");
});

await step("bulk2-ingest", async () => {
  const csv = "LastName,Email\n" + Array.from({ length: 300 }, (_, i) => `Bulk${i},bulk${i}@example.com`).join("\n") + "\n";
  conn.bulk2.pollInterval = 200;
  conn.bulk2.pollTimeout = 60000;
  const res = await conn.bulk2.loadAndWaitForResults({ object: "Contact", operation: "insert", input: csv });
  expect("bulk2-ingest", res.successfulResults.length === 300 && res.failedResults.length === 0,
    { ok: res.successfulResults.length, failed: res.failedResults.length });
  report("bulk2-ingest", { inserted: res.successfulResults.length });
});

await step("bulk2-query", async () => {
  conn.bulk2.pollInterval = 200;
  const stream = await conn.bulk2.query("SELECT Id, Email FROM Contact WHERE Email LIKE 'bulk%'");
  const rows = [];
  for await (const row of stream) rows.push(row);
  expect("bulk2-query", rows.length === 300, rows.length);
  report("bulk2-query", { rows: rows.length });
});
