// solve(instance, options): the request-optimal assignment, choosing the engine by the
// instance's shape. Every engine returns the same optimal total (tests prove it):
//   previous / weights   -> min-cost max flow on the compact network (network.ts)
//   default null, no bounds -> closed form + O(n) construction (unbounded.ts)
//   default null or 0    -> Dinic on the compact network with the segment-tree gadget
//   default k > 0        -> Kleitman–Wang-style start (uniform.ts) or Greedy start (with
//                           listed bounds), then implicit augmenting BFS (implicit.ts)
import { greedyFill } from './greedy.js';
import { solveImplicit } from './implicit.js';
import { solveNetwork, solveNetworkMinCost } from './network.js';
import { previousOf, toProblem, type Previous } from './parse.js';
import { finalize, InputError, type Instance, type Problem, type Solution } from './problem.js';
import { solveUnbounded } from './unbounded.js';
import { uniformStart } from './uniform.js';

export type Algorithm = 'maxflow' | 'greedy';

export interface SolveOptions {
  algorithm?: Algorithm;
  /** the previous answer: the result moves as few of its units as possible */
  previous?: Previous | { assignments: ArrayLike<ArrayLike<number>> };
  /** force an engine (tests): 'auto' | 'network' (expands a finite default) | 'implicit' */
  engine?: 'auto' | 'network' | 'implicit';
}

/** Pair arcs the min-cost engine may expand for a finite default before refusing. */
export const MAX_EXPANDED_PAIRS = 50_000_000;

function isProblem(x: unknown): x is Problem {
  return typeof x === 'object' && x !== null && 'bStart' in x && 'R' in x;
}

export function solveProblem(p: Problem, opt: SolveOptions = {}): Solution {
  const algorithm = opt.algorithm ?? 'maxflow';
  if (algorithm === 'greedy') return finalize(p.n, greedyFill(p).cells);
  if (algorithm !== 'maxflow')
    throw new InputError(`algorithm: unknown "${String(algorithm)}" (maxflow|greedy)`);
  let previous: Previous | undefined;
  if (opt.previous) {
    previous = 'from' in opt.previous ? opt.previous : previousOf(Array.from(opt.previous.assignments), p.n);
  }
  if (previous || p.weights) {
    if (Number.isFinite(p.k) && p.k > 0 && p.n * (p.n - 1) > MAX_EXPANDED_PAIRS) {
      throw new Error(
        `previous/weights with a finite defaultBound expand n(n-1) pairs; ${p.n} peers is too many`,
      );
    }
    let sourceCost: Float64Array | undefined;
    if (p.weights) {
      let wmax = 0;
      let sr = 0;
      for (let i = 0; i < p.n; i++) {
        wmax = Math.max(wmax, p.weights[i]!);
        sr += p.R[i]!;
      }
      // the weight term dominates the move count (at most ΣR) lexicographically
      const scale = previous ? sr + 1 : 1;
      sourceCost = new Float64Array(p.n);
      for (let i = 0; i < p.n; i++) sourceCost[i] = (wmax - p.weights[i]!) * scale;
    }
    return solveNetworkMinCost(p, { moveCost: previous ? 1 : 0, sourceCost, previous });
  }
  const engine = opt.engine ?? 'auto';
  const finite = Number.isFinite(p.k) && p.k > 0;
  if (engine === 'network') return solveNetwork(p, true);
  if (engine === 'implicit' || (finite && engine === 'auto')) {
    if (engine === 'implicit') return solveImplicit(p);
    if (p.bi.length > 0) return solveImplicit(p, greedyFill(p).cells);
    const start = uniformStart(p);
    // Certificate without a BFS: no requester can get more than k from each of the n-1
    // others, nor a host give more, so min(Σ min(R_i, k(n-1)), Σ min(O_j, k(n-1))) bounds
    // every flow. A start that reaches it is optimal as it stands.
    let got = 0;
    for (let e = 0; e < start.length; e++) got += start.u[e]!;
    let sr = 0;
    let so = 0;
    const most = p.k * Math.max(0, p.n - 1);
    for (let i = 0; i < p.n; i++) {
      sr += Math.min(p.R[i]!, most);
      so += Math.min(p.O[i]!, most);
    }
    if (got === Math.min(sr, so)) return finalize(p.n, start);
    return solveImplicit(p, start);
  }
  if (p.k === Infinity && p.bi.length === 0) return solveUnbounded(p);
  return solveNetwork(p);
}

/** Solves an instance (the JSON contract's object, or a parsed Problem). */
export function solve(instance: Instance | Problem, opt: SolveOptions = {}): Solution {
  return solveProblem(isProblem(instance) ? instance : toProblem(instance), opt);
}
