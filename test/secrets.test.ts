// Secrets are masked by the shape of what was given, wherever it was given, and a corpus of commands
// never shows one (the short version of reliability/scenarios/secrets.ts, on the PostgreSQL server).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactText, redactUrl, redactWebhook, scrub, secretsOfUrl, secretsOfWebhook } from '../src/db/redact.ts';
import { renderFailures, renderTable } from '../reliability/run.ts';
import { dropFixtures } from '../reliability/lib/flagship.ts';
import { malformedUrls, secrets } from '../reliability/scenarios/secrets.ts';

test('regression (secrets): a password is masked in every URL shape, not only postgres://', () => {
  const shapes = [
    ...malformedUrls('127.0.0.1:5432', 'app'),
    { shape: 'leading space', url: ' postgres://u:LeadSpace-Pw@h/db', secret: 'LeadSpace-Pw' },
    { shape: 'trailing newline', url: 'postgres://u:Newline-Pw@h/db\n', secret: 'Newline-Pw' },
    { shape: 'password parameter', url: 'postgres://h/db?sslmode=require&password=Param-Pw', secret: 'Param-Pw' },
    { shape: 'quoted keyword value', url: "host=h password='Quoted Pw' dbname=x", secret: 'Quoted Pw' },
  ];
  for (const s of shapes) {
    const shown = redactUrl(s.url);
    assert.ok(!shown.includes(s.secret), `${s.shape}: ${shown}`);
    assert.ok(shown.includes('***'), `${s.shape}: masked, not dropped: ${shown}`);
    assert.ok(secretsOfUrl(s.url).includes(s.secret), `${s.shape}: the secret is known, so messages can be scrubbed of it`);
    assert.ok(!redactText(`cannot open ${s.url.trim()}: bad`).includes(s.secret), `${s.shape}: inside a message`);
  }
  // what is not secret stays readable
  assert.equal(redactUrl('postgres://app:pw@db.example.com:5432/prod?sslmode=require'), 'postgres://app:***@db.example.com:5432/prod?sslmode=require');
  assert.equal(redactUrl('pglite:./data'), 'pglite:./data');
  assert.equal(redactUrl('postgres://app@h/db'), 'postgres://app@h/db');
});

test('regression (secrets): a webhook shows scheme and host only; credentials, path token and query are masked', () => {
  const url = 'https://hookuser:HookPw-1@hooks.example.com/services/T0123/B0456/Tok3nTok3nTok3n?token=QTok-99&x=1';
  assert.equal(redactWebhook(url), 'https://***@hooks.example.com/***?***');
  assert.equal(redactWebhook('http://127.0.0.1:9000/'), 'http://127.0.0.1:9000');
  const secrets = secretsOfWebhook(url);
  for (const s of ['hookuser', 'HookPw-1', 'Tok3nTok3nTok3n', 'QTok-99']) assert.ok(secrets.includes(s), s);
  const message = `fetch failed: ${url} (connect ECONNREFUSED)`;
  const clean = scrub(message, secrets);
  for (const s of ['HookPw-1', 'Tok3nTok3nTok3n', 'QTok-99']) assert.ok(!clean.includes(s), clean);
  // a webhook that does not parse is still masked by its shape
  assert.ok(!redactWebhook('https://u:Pw-Broken@exa mple.com/Tok/x').includes('Pw-Broken'));
});

test("secrets (short): a command corpus with planted secrets never shows one in output, files or belay's rows", { timeout: 600_000 }, async () => {
  // the scenario itself, not runSuite: that drops every suite database first, other suites' included
  const rows = await secrets.run({ seed: 20260101, short: true, parallel: 1, log: () => undefined }).finally(dropFixtures);
  assert.equal(rows.length, 1, renderTable(rows));
  assert.equal(rows[0]!.failures.length, 0, `\n${renderTable(rows)}\n${renderFailures(rows)}`);
});
