// The contract of a predictor: which actions it looks at, and the findings it predicts for one of them
// from the live rows as the statements before it leave them. One predictor per statement kind, one file each.
import type { Action, PredictContext } from '../context.ts';
import type { Finding } from '../types.ts';

export interface Predictor {
  name: string;
  applies(a: Action): boolean;
  predict(a: Action, ctx: PredictContext): Promise<Finding[]>;
}

export const constraintOf = (a: Action) =>
  a.kind === 'AT_AddConstraint' ? (a.node.def as { Constraint: import('../columns.ts').ConstraintNode }).Constraint : undefined;
