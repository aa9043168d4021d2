// How each step of a migration is undone, said before anything runs (runbook) and before a rollback
// touches anything (pre-scan): batched steps by their undo log, SQL steps by their `down`, or not at all.
import type { Migration } from '../spec/define.ts';

export interface StepReversibility {
  stepNo: number;
  name: string;
  kind: 'batched' | 'sql';
  reversible: boolean;
  /** One sentence for the runbook and the rollback's refusal. */
  how: string;
}

export interface Reversibility {
  /** Every step can be undone by belay rollback. */
  reversible: boolean;
  steps: StepReversibility[];
  /** Steps that declare down: null. */
  irreversible: StepReversibility[];
}

export function reversibility(spec: Pick<Migration, 'steps'>): Reversibility {
  const steps = spec.steps.map((s, stepNo): StepReversibility => {
    if (s.kind === 'batched') {
      return {
        stepNo,
        name: s.name,
        kind: 'batched',
        reversible: true,
        how: `undo log: before-images of ${s.writes.join(', ')} in ${s.table}, restored newest batch first`,
      };
    }
    return s.down === null
      ? { stepNo, name: s.name, kind: 'sql', reversible: false, how: 'IRREVERSIBLE (down: null): only a restore from backup undoes it' }
      : { stepNo, name: s.name, kind: 'sql', reversible: true, how: 'runs its down SQL' };
  });
  const irreversible = steps.filter((s) => !s.reversible);
  return { reversible: irreversible.length === 0, steps, irreversible };
}
