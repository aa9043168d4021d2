// The plan file's schema: a plan.json is input like any other (it can be edited by hand), so every field
// is checked on load, its numbers by the same schemas as the command line's (spec/numbers.ts).
import { z } from 'zod';
import { NUMBERS } from '../spec/numbers.ts';

const amount = z.number({ error: 'must be a number' }).finite({ error: 'must be a finite number' }).min(0, { error: 'must be at least 0' });
const count = NUMBERS.count;
const text = z.string({ error: 'must be a string' });
const named = text.min(1, { error: 'must not be empty' });
const hex64 = text.regex(/^[0-9a-f]{64}$/, { error: 'must be a sha256 in hex (64 characters 0-9a-f)' });
const range = z.strictObject({ low: amount, mid: amount, high: amount });

const tablePlan = z.strictObject({
  name: named,
  fingerprint: hex64,
  rowsEstimate: amount.nullable(),
  rowsExact: count.nullable(),
  rows: amount,
  rowsMethod: z.enum(['estimate', 'exact'], { error: 'must be "estimate" or "exact"' }),
  tableBytes: amount,
  indexBytes: amount,
});

const key = z.union([text, z.number()], { error: 'must be a key (text or number)' });
const sample = z.strictObject({ lo: key, hi: key, rows: count, changed: count, ms: amount, rowsPerSec: amount });
const index = z.strictObject({ name: named, table: named, columns: named });

const stepPlan = z.strictObject({
  name: named,
  kind: z.enum(['batched', 'sql'], { error: 'must be "batched" or "sql"' }),
  table: named.optional(),
  rows: amount,
  samples: z.array(sample),
  rates: range.nullable(),
  estimateMs: range,
  seqScans: z.array(z.strictObject({ step: text, table: named, alias: text, rows: amount, condition: text.nullable(), proposedIndex: index.nullable() })),
  note: text.optional(),
});

export const planFileSchema = z.strictObject({
  belayPlan: z.number(),
  createdAt: text.refine((s) => !Number.isNaN(Date.parse(s)), { error: 'must be an ISO timestamp' }),
  migration: z.strictObject({ id: named, checksum: hex64, file: named, params: z.record(z.string(), text) }),
  database: z.strictObject({ kind: z.enum(['postgres', 'pglite'], { error: 'must be "postgres" or "pglite"' }), label: text }),
  targetBatchMs: NUMBERS.targetBatchMs,
  mode: z.enum(['single', 'batched'], { error: 'must be "single" or "batched"' }),
  batchSize: NUMBERS.batchSize,
  // an empty list would skip the check that the tables did not change since the plan
  tables: z.array(tablePlan, { error: 'must be a list' }).min(1, { error: 'must list every table the migration touches' }),
  steps: z.array(stepPlan, { error: 'must be a list' }).min(1, { error: 'must list every step of the migration' }),
  estimate: z.strictObject({ lowMs: amount, midMs: amount, highMs: amount, source: z.enum(['calibration', 'dry-run']) }),
  commitMs: amount,
  throttleMs: amount,
  proposedIndexes: z.array(index),
  // what the catalog said about each step when planned: shown to reviewers, never read back by apply
  catalog: z.array(z.record(z.string(), z.unknown()), { error: 'must be a list' }).optional(),
});
