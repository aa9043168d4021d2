// What the runbook and the report show that other stages know. The pipeline passes it in (run/pipeline.ts):
// report/ renders, it does not import the stages it describes.
import type { Db } from '../db/connection.ts';
import type { BatchedStep, Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import type { StepTarget } from '../spec/resolve.ts';
import type { StepFacts } from '../spec/step-facts.ts';

export interface ReportSources {
  /** The SQL that returns a declared check's rows, for kinds that need no catalog look-up. */
  checkSql(c: Check): string | undefined;
  /** The statement one batch of a step runs, generated from its projection ($1/$2 the range, $3 run, $4 step, $5 batch). */
  batchSql(t: StepTarget, step: BatchedStep): string;
  /** The step's in-batch verification, wrapped as it runs (reading `written`). */
  verifySql(t: StepTarget, step: BatchedStep): string | undefined;
  /** The built-in check kinds, for the troubleshooting guide. */
  checkKinds: Array<{ code: string; kind: string; meaning: string; whatToDo: string }>;
  /**
   * What the catalog says about the batched steps' writes (triggers, foreign-key actions, cascades, keys,
   * tables changed indirectly) and the predictions belay check derives from it, described (not run).
   */
  catalog?(
    db: Db,
    m: LoadedMigration,
  ): Promise<{ facts: StepFacts[]; derived: Array<{ code: string; kind: string; step: string; severity: string; meaning: string; fix: string }> }>;
  /** The migration's checks run read-only now: a report of a run that stored no pre-flight results. */
  liveChecks(
    db: Db,
    m: LoadedMigration,
    sample: number,
  ): Promise<{ findings: Array<{ code: string; severity: string; message: string; count: number; sample: unknown[]; fix?: string }> }>;
}
