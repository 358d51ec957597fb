/**
 * One matching: objects -> instance -> solve -> desired Assignments. `pcloud match` and
 * the matchmaker's pass both call `Matcher.match`, so they agree by construction.
 *
 * The solve runs in stability mode against the previous answer (`input.assignments` on
 * present hosts, not lost): among optimal answers, the one that moves fewest units. An
 * instance identical to the last one reuses its answer.
 */
import { solve } from '../solver/index.js';
import { desiredAssignment, type DesiredAssignment } from './assignments.js';
import { buildInstance, decodeAnswer, type MatchInput, type MatchInstance, type Placed } from './instance.js';

export interface Matching {
  instance: MatchInstance;
  /** The answer, sorted by requester, request, host. */
  placed: Placed[];
  /** One desired Assignment per placement, in the same order. */
  assignments: DesiredAssignment[];
  /** False when the instance equalled the last one and its answer was reused. */
  solved: boolean;
  solveMs: number;
}

export function solveInstance(m: MatchInstance): Placed[] {
  const solution = solve(m.instance, m.previous.length > 0 ? { previous: { assignments: m.previous } } : {});
  const cells: number[][] = [];
  for (let e = 0; e < solution.count; e++)
    cells.push([solution.from[e]!, solution.to[e]!, solution.units[e]!]);
  return decodeAnswer(m, cells);
}

export class Matcher {
  private last: { signature: string; placed: Placed[] } | undefined;

  /** Forget the last answer (a new leader solves afresh). */
  reset(): void {
    this.last = undefined;
  }

  match(input: MatchInput): Matching {
    const instance = buildInstance(input);
    const signature = JSON.stringify([instance.instance, instance.previous]);
    let placed: Placed[];
    let solveMs = 0;
    const solved = this.last?.signature !== signature;
    if (!solved && this.last) {
      placed = this.last.placed;
    } else {
      const t0 = performance.now();
      placed = solveInstance(instance);
      solveMs = performance.now() - t0;
      this.last = { signature, placed };
    }
    const byKey = new Map(instance.requests.map((r) => [`${r.requester}/${r.name}`, r.request] as const));
    const assignments = placed.map((p) => desiredAssignment(p, byKey.get(`${p.requester}/${p.request}`)!));
    return { instance, placed, assignments, solved, solveMs };
  }
}

/** One matching with nothing remembered (`pcloud match`, tests). */
export function match(input: MatchInput): Matching {
  return new Matcher().match(input);
}
