export { solve, solveProblem, type SolveOptions, type Algorithm } from './solve.js';
export { parseInstance, parsePrevious, toProblem, buildProblem, type Previous } from './parse.js';
export {
  InputError,
  toAnswer,
  formatAnswer,
  formatAnswerBytes,
  finalize,
  Cells,
  type Answer,
  type Instance,
  type Problem,
  type Solution,
} from './problem.js';
export { unboundedTotal, solveUnbounded } from './unbounded.js';
export { solveGreedy, greedyFill } from './greedy.js';
export { solveImplicit } from './implicit.js';
export { solveNetwork, solveNetworkMinCost } from './network.js';
export { uniformStart } from './uniform.js';
