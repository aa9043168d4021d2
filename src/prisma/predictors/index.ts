// The predictors, in the order their findings are reported for one statement.
import { alterTypePredictor } from './alter-type.ts';
import { checkPredictor } from './check.ts';
import { dataStatementPredictor } from './data-statement.ts';
import { dropColumnPredictor, dropTablePredictor } from './drop-data.ts';
import { existsPredictor } from './exists.ts';
import { foreignKeyPredictor } from './foreign-key.ts';
import { notNullPredictor } from './not-null.ts';
import type { Predictor } from './predictor.ts';
import { requiredColumnPredictor } from './required-column.ts';
import { uniquePredictor } from './unique.ts';

export const PREDICTORS: readonly Predictor[] = Object.freeze([
  existsPredictor,
  uniquePredictor,
  notNullPredictor,
  requiredColumnPredictor,
  foreignKeyPredictor,
  alterTypePredictor,
  checkPredictor,
  dropColumnPredictor,
  dropTablePredictor,
  dataStatementPredictor,
]);
