// A flow network over typed arrays: arcs 2e (forward) and 2e+1 (reverse), adjacency in CSR.
// Max flow is Dinic (BFS levels + iterative blocking-flow DFS with current-arc pointers);
// min-cost max flow is successive shortest paths with Dijkstra on reduced costs (all
// costs are non-negative) followed by a blocking flow on the zero-reduced-cost arcs. Both
// run the one `blockingFlow` phase, parameterised by the admissible arcs (as capacities).

export class FlowGraph {
  readonly nodes: number;
  arcs = 0;
  private head: Int32Array;
  private cap: Float64Array;
  private cost: Float64Array | null;
  private orig: Float64Array;
  private start: Int32Array | null = null;
  private adj: Int32Array | null = null;

  constructor(nodes: number, arcHint = 16, withCost = false) {
    this.nodes = nodes;
    const c = Math.max(2 * arcHint, 32);
    this.head = new Int32Array(c);
    this.cap = new Float64Array(c);
    this.orig = new Float64Array(c >> 1);
    this.cost = withCost ? new Float64Array(c) : null;
  }

  private grow(): void {
    const c = this.head.length * 2;
    const h = new Int32Array(c);
    h.set(this.head);
    this.head = h;
    const cp = new Float64Array(c);
    cp.set(this.cap);
    this.cap = cp;
    const o = new Float64Array(c >> 1);
    o.set(this.orig);
    this.orig = o;
    if (this.cost) {
      const co = new Float64Array(c);
      co.set(this.cost);
      this.cost = co;
    }
  }

  /** Adds arc u -> v with capacity c (and cost w); returns its id. */
  addArc(u: number, v: number, c: number, w = 0): number {
    const e = this.arcs++;
    if (2 * e + 2 > this.head.length) this.grow();
    // the reverse arc's head is the forward arc's tail
    this.head[2 * e] = v;
    this.head[2 * e + 1] = u;
    this.cap[2 * e] = c;
    this.cap[2 * e + 1] = 0;
    this.orig[e] = c;
    if (this.cost) {
      this.cost[2 * e] = w;
      this.cost[2 * e + 1] = -w;
    }
    this.start = null;
    return e;
  }

  /** Flow on arc e after a run. */
  flow(e: number): number {
    return this.orig[e]! - this.cap[2 * e]!;
  }

  /** Residual capacity of arc e. */
  residual(e: number): number {
    return this.cap[2 * e]!;
  }

  /** Sends x units along arc e (a warm start; the caller keeps conservation). */
  push(e: number, x: number): void {
    this.cap[2 * e]! -= x;
    this.cap[2 * e + 1]! += x;
  }

  tail(e: number): number {
    return this.head[2 * e + 1]!;
  }
  headOf(e: number): number {
    return this.head[2 * e]!;
  }

  private csr(): { start: Int32Array; adj: Int32Array } {
    if (this.start && this.adj) return { start: this.start, adj: this.adj };
    const N = this.nodes;
    const m2 = 2 * this.arcs;
    const start = new Int32Array(N + 1);
    for (let a = 0; a < m2; a++) start[this.head[a ^ 1]! + 1]!++;
    for (let v = 0; v < N; v++) start[v + 1]! += start[v]!;
    const fill = start.slice(0, N);
    const adj = new Int32Array(m2);
    for (let a = 0; a < m2; a++) adj[fill[this.head[a ^ 1]!]!++] = a;
    this.start = start;
    this.adj = adj;
    return { start, adj };
  }

  /** Dinic's max flow from s to t; returns its value. */
  maxflow(s: number, t: number): number {
    const w = this.workspace();
    let total = 0;
    for (;;) {
      const f = this.blockingFlow(s, t, this.cap, w);
      if (f === 0) return total;
      total += f;
    }
  }

  /**
   * Min-cost max flow (costs must be non-negative on forward arcs). Returns [flow, cost].
   */
  minCostMaxFlow(s: number, t: number): [number, number] {
    const cost = this.cost;
    if (!cost) throw new Error('minCostMaxFlow needs a graph built with costs');
    const { start, adj } = this.csr();
    const N = this.nodes;
    const head = this.head;
    const cap = this.cap;
    const pot = new Float64Array(N);
    const dist = new Float64Array(N);
    const heapV = new Int32Array(2 * this.arcs + N + 1);
    const heapD = new Float64Array(2 * this.arcs + N + 1);
    const w = this.workspace();
    const EPS = 1e-9;
    const m2 = 2 * this.arcs;
    // The phase's admissible arcs: residual capacity on arcs of zero reduced cost, 0 elsewhere.
    // (An arc and its reverse have opposite reduced costs, so both are in or both out.)
    const admissible = new Float64Array(m2);
    const zeroReducedCost = (a: number): boolean =>
      Math.abs(cost[a]! + pot[head[a ^ 1]!]! - pot[head[a]!]!) <= EPS;
    let flow = 0;
    for (;;) {
      // Dijkstra on reduced costs (lazy binary heap)
      dist.fill(Infinity);
      dist[s] = 0;
      let hs = 0;
      const push = (v: number, d: number): void => {
        let i = hs++;
        while (i > 0) {
          const pa = (i - 1) >> 1;
          if (heapD[pa]! <= d) break;
          heapD[i] = heapD[pa]!;
          heapV[i] = heapV[pa]!;
          i = pa;
        }
        heapD[i] = d;
        heapV[i] = v;
      };
      push(s, 0);
      while (hs > 0) {
        const u = heapV[0]!;
        const du = heapD[0]!;
        hs--;
        if (hs > 0) {
          const lv = heapV[hs]!;
          const ld = heapD[hs]!;
          let i = 0;
          for (;;) {
            let c = 2 * i + 1;
            if (c >= hs) break;
            if (c + 1 < hs && heapD[c + 1]! < heapD[c]!) c++;
            if (heapD[c]! >= ld) break;
            heapD[i] = heapD[c]!;
            heapV[i] = heapV[c]!;
            i = c;
          }
          heapD[i] = ld;
          heapV[i] = lv;
        }
        if (du > dist[u]!) continue;
        for (let p = start[u]!, pe = start[u + 1]!; p < pe; p++) {
          const a = adj[p]!;
          if (cap[a]! <= 0) continue;
          const v = head[a]!;
          const nd = du + cost[a]! + pot[u]! - pot[v]!;
          if (nd < dist[v]! - EPS) {
            dist[v] = nd;
            push(v, nd);
          }
        }
      }
      if (dist[t] === Infinity) break;
      const dt = dist[t]!;
      for (let v = 0; v < N; v++) pot[v]! += Math.min(dist[v]!, dt);
      for (let a = 0; a < m2; a++) admissible[a] = zeroReducedCost(a) ? cap[a]! : 0;
      const f = this.blockingFlow(s, t, admissible, w);
      if (f === 0) throw new Error('minCostMaxFlow: no admissible path (internal error)');
      for (let a = 0; a < m2; a++) if (zeroReducedCost(a)) cap[a] = admissible[a]!;
      flow += f;
    }
    // every unit pays the cost of each arc it crosses: sum over forward arcs
    let total = 0;
    for (let e = 0; e < this.arcs; e++) total += (this.orig[e]! - cap[2 * e]!) * cost[2 * e]!;
    return [flow, total];
  }

  private workspace(): Workspace {
    const N = this.nodes;
    return {
      level: new Int32Array(N),
      queue: new Int32Array(N),
      it: new Int32Array(N),
      path: new Int32Array(N),
    };
  }

  /**
   * One phase of Dinic's algorithm over the admissible arcs, given as the residual
   * capacities the phase may use (`cap`: the graph's own for max flow; for min-cost flow
   * a copy with every arc of non-zero reduced cost at 0): BFS levels from s, then a
   * blocking flow by iterative DFS with current-arc pointers, pushed into `cap`. Returns
   * the flow pushed; 0 when t is not reachable. Admissibility as capacities keeps the
   * inner loops free of a per-arc test, so max flow runs exactly the loops it had alone.
   */
  private blockingFlow(
    s: number,
    t: number,
    cap: Float64Array,
    { level, queue, it, path }: Workspace,
  ): number {
    const { start, adj } = this.csr();
    const N = this.nodes;
    const head = this.head;
    level.fill(-1);
    level[s] = 0;
    let qh = 0;
    let qt = 0;
    queue[qt++] = s;
    while (qh < qt) {
      const u = queue[qh++]!;
      const lu = level[u]!;
      // nodes at t's level or deeper are on no shortest path to t
      if (level[t]! >= 0 && lu >= level[t]!) break;
      for (let p = start[u]!, pe = start[u + 1]!; p < pe; p++) {
        const a = adj[p]!;
        if (cap[a]! > 0) {
          const v = head[a]!;
          if (level[v]! < 0) {
            level[v] = lu + 1;
            queue[qt++] = v;
          }
        }
      }
    }
    if (level[t]! < 0) return 0;
    for (let v = 0; v < N; v++) it[v] = start[v]!;
    // iterative DFS: path[0..depth-1] are arcs from s
    let pushed = 0;
    let depth = 0;
    let u = s;
    for (;;) {
      if (u === t) {
        let b = Infinity;
        for (let d = 0; d < depth; d++) b = Math.min(b, cap[path[d]!]!);
        let back = depth;
        for (let d = 0; d < depth; d++) {
          const a = path[d]!;
          cap[a]! -= b;
          cap[a ^ 1]! += b;
          if (cap[a] === 0 && back === depth) back = d;
        }
        pushed += b;
        depth = back;
        u = depth === 0 ? s : head[path[depth - 1]!]!;
        continue;
      }
      let advanced = false;
      const lu = level[u]! + 1;
      for (let p = it[u]!, pe = start[u + 1]!; p < pe; p++) {
        const a = adj[p]!;
        const v = head[a]!;
        if (cap[a]! > 0 && level[v] === lu) {
          it[u] = p;
          path[depth++] = a;
          u = v;
          advanced = true;
          break;
        }
      }
      if (advanced) continue;
      it[u] = start[u + 1]!;
      level[u] = -1;
      if (depth === 0) return pushed;
      depth--;
      u = head[path[depth]! ^ 1]!;
      it[u]!++;
    }
  }
}

/** Scratch arrays of one max-flow run, reused by its phases. */
interface Workspace {
  level: Int32Array;
  queue: Int32Array;
  it: Int32Array;
  path: Int32Array;
}
