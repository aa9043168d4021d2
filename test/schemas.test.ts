// The published JSON Schemas and docs/spec-reference.md are generated from the zod schemas that validate a
// migration and belay.config.json (scripts/schemas.ts): a committed copy that differs is stale.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generated } from '../scripts/schemas.ts';
import { ROOT } from './helpers/flagship.ts';

const files = generated();

describe('generated schemas and reference', () => {
  for (const [rel, text] of Object.entries(files)) {
    test(`${rel} is what npm run schemas writes from the zod schemas`, () => {
      const committed = readFileSync(path.join(ROOT, rel), 'utf8');
      assert.ok(committed === text, `${rel} is stale: run npm run schemas and commit the result`);
    });
  }

  test('the reference page has a row for every field of the spec and of the config, at every depth', () => {
    const page = files['docs/spec-reference.md']!;
    const missing: string[] = [];
    const walk = (s: Record<string, unknown>, at: string) => {
      const props = (s.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [k, v] of Object.entries(props)) {
        if (!page.includes(`| \`${k}\` |`)) missing.push(`${at}${k}`);
        const inner = (v.items ?? v.additionalProperties ?? v) as Record<string, unknown>;
        for (const o of [inner, ...((inner.oneOf as Record<string, unknown>[]) ?? [])]) if (o && typeof o === 'object') walk(o, `${at}${k}.`);
      }
    };
    walk(JSON.parse(files['schemas/migration.schema.json']!), '');
    walk(JSON.parse(files['schemas/belay.config.schema.json']!), 'config.');
    assert.deepEqual(missing, []);
    for (const heading of ['`steps[kind=batched]`', '`options`', '`tempIndexes[]`', '`monitor[]`', '`environments.<name>`'])
      assert.ok(page.includes(heading), heading);
    for (const field of ['key', 'options', 'tempIndexes', 'monitor', 'maxRejected', 'disableUserTriggers'])
      assert.match(page, new RegExp(`\\| \`${field}\` \\| [^|]+ \\| [^|]+ \\| [A-Za-z]`), `${field} has a description`);
  });

  test('the JSON Schema of a migration says what a user must write: required fields, kinds, closed objects', () => {
    const s = JSON.parse(files['schemas/migration.schema.json']!);
    assert.deepEqual(s.required, ['id', 'purpose', 'tables', 'steps']);
    assert.equal(s.additionalProperties, false);
    assert.deepEqual(
      s.properties.steps.items.oneOf.map((o: { properties: { kind: { const: string } } }) => o.properties.kind.const),
      ['batched', 'sql'],
    );
    assert.equal(s.properties.options.properties.batchSize.default, 10_000);
    assert.match(s.$id, /migration\.schema\.json$/);
  });
});
