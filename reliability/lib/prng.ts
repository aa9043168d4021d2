// A seeded PRNG (mulberry32, the generator's) so every random choice of a trial can be replayed from its seed.
import { Rng } from '../../examples/event-type-owner/generate.ts';

export class Prng extends Rng {
  constructor(readonly seed: number) {
    super(seed);
  }
}

/** The seed of trial `i` of a scenario: printed with every failure, replayable with --seed and --only. */
export function trialSeed(suiteSeed: number, scenario: string, i: number): number {
  let h = suiteSeed >>> 0;
  for (const ch of `${scenario}#${i}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}
