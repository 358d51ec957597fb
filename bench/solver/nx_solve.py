#!/usr/bin/env python3
"""networkx anchor for the solver benchmark: same graphs as lemon_solve.cpp, preflow_push.
Prints the answer JSON, or exits 3 ("skip") when the graph has more arcs than --max-arcs."""
import json
import sys

import networkx as nx
from networkx.algorithms.flow import preflow_push


def main():
    path = sys.argv[1]
    max_arcs = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    inst = json.load(open(path))
    n, O, R, k, B = inst["peers"], inst["offers"], inst["requests"], inst["defaultBound"], inst["bounds"]
    if k is None:
        arcs = 4 * n + 2 * n * max(1, n.bit_length())
    elif k > 0:
        arcs = 2 * n + sum(1 for x in R if x) * sum(1 for x in O if x)
    else:
        arcs = 2 * n + len(B)
    if arcs > max_arcs:
        print(f"skip: {arcs} arcs > {max_arcs}", file=sys.stderr)
        sys.exit(3)
    g = nx.DiGraph()
    for i in range(n):
        if R[i]:
            g.add_edge("s", ("r", i), capacity=R[i])
        if O[i]:
            g.add_edge(("o", i), "t", capacity=O[i])
    pairs = []
    if k is None:
        # segment tree over hosts (same gadget as the project and the LEMON harness)
        def build(node, lo, hi):
            if hi - lo == 1:
                return ("o", lo)
            mid = (lo + hi) // 2
            g.add_edge(("T", node), build(2 * node, lo, mid))
            g.add_edge(("T", node), build(2 * node + 1, mid, hi))
            return ("T", node)

        def cover(node, lo, hi, a, b, src):
            if b <= lo or hi <= a:
                return
            if a <= lo and hi <= b:
                g.add_edge(src, ("o", lo) if hi - lo == 1 else ("T", node))
                return
            mid = (lo + hi) // 2
            cover(2 * node, lo, mid, a, b, src)
            cover(2 * node + 1, mid, hi, a, b, src)

        if n > 1:
            sys.setrecursionlimit(10000)
            build(1, 0, n)
            for i in range(n):
                if R[i]:
                    cover(1, 0, n, 0, i, ("r", i))
                    cover(1, 0, n, i + 1, n, ("r", i))
    elif k > 0:
        for i in range(n):
            if R[i]:
                for j in range(n):
                    if j != i and O[j]:
                        g.add_edge(("r", i), ("o", j), capacity=k)
                        pairs.append((i, j))
    else:
        for i, j, c in B:
            if c > 0:
                g.add_edge(("r", i), ("o", j), capacity=c)
                pairs.append((i, j))
    g.add_node("s")
    g.add_node("t")
    value, flow = nx.maximum_flow(g, "s", "t", flow_func=preflow_push)
    out = [[i, j, flow[("r", i)][("o", j)]] for i, j in pairs if flow[("r", i)][("o", j)] > 0]
    json.dump({"total": value, "assignments": out}, sys.stdout, separators=(",", ":"))
    print()


if __name__ == "__main__":
    main()
