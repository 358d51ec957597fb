// LEMON anchor for the solver benchmark: reads the same instance JSON, builds the flow
// network, runs lemon::Preflow and prints the total (and the pairs, for expanded graphs).
//   unbounded default, no bounds: segment-tree gadget, O(n log n) arcs ("every peer but i")
//   finite default k, no bounds:  every pair i != j with R_i > 0 and O_j > 0 (O(n^2))
//   default 0:                    the listed bounds only
#include <lemon/preflow.h>
#include <lemon/smart_graph.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace lemon;
typedef long long ll;

static std::vector<char> buf;
static size_t pos = 0;
static void ws() { while (pos < buf.size() && strchr(" \n\r\t", buf[pos])) pos++; }
static bool lit(char c) { ws(); if (pos < buf.size() && buf[pos] == c) { pos++; return true; } return false; }
static ll num() { ws(); ll v = 0; while (pos < buf.size() && buf[pos] >= '0' && buf[pos] <= '9') v = v * 10 + (buf[pos++] - '0'); return v; }
static std::string key() { ws(); pos++; size_t s = pos; while (buf[pos] != '"') pos++; std::string k(&buf[s], pos - s); pos++; lit(':'); return k; }
static void arr(std::vector<ll>& out) { lit('['); if (lit(']')) return; do out.push_back(num()); while (lit(',')); lit(']'); }

int main(int argc, char** argv) {
  if (argc < 2) { fprintf(stderr, "usage: lemon_solve INSTANCE.json\n"); return 2; }
  FILE* f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END); buf.resize(ftell(f)); fseek(f, 0, SEEK_SET);
  if (fread(buf.data(), 1, buf.size(), f) != buf.size()) return 2;
  fclose(f);
  ll n = 0, k = -1; std::vector<ll> O, R, B;
  lit('{');
  do {
    std::string kk = key();
    if (kk == "peers") n = num();
    else if (kk == "offers") arr(O);
    else if (kk == "requests") arr(R);
    else if (kk == "defaultBound") { ws(); if (buf[pos] == 'n') { pos += 4; k = -1; } else k = num(); }
    else if (kk == "bounds") { lit('['); if (!lit(']')) { do { lit('['); B.push_back(num()); lit(','); B.push_back(num()); lit(','); B.push_back(num()); lit(']'); } while (lit(',')); lit(']'); } }
  } while (lit(','));
  SmartDigraph g;
  SmartDigraph::ArcMap<ll> cap(g);
  g.reserveNode(4 * n + 2);
  SmartDigraph::Node s = g.addNode(), t = g.addNode();
  std::vector<SmartDigraph::Node> r(n), o(n);
  for (ll i = 0; i < n; i++) { r[i] = g.addNode(); o[i] = g.addNode(); }
  ll INF = 0; for (ll i = 0; i < n; i++) INF += R[i];
  INF += 1;
  auto arc = [&](SmartDigraph::Node a, SmartDigraph::Node b, ll c) { SmartDigraph::Arc e = g.addArc(a, b); cap[e] = c; return e; };
  for (ll i = 0; i < n; i++) { if (R[i]) arc(s, r[i], R[i]); if (O[i]) arc(o[i], t, O[i]); }
  std::vector<SmartDigraph::Arc> pairArcs; std::vector<std::pair<int,int>> pairs;
  if (k < 0) {
    if (!B.empty()) { fprintf(stderr, "lemon_solve: unbounded default with bounds is not supported\n"); return 2; }
    // segment tree over hosts, the same gadget as the project's network engine:
    // r_i -> the O(log n) nodes covering [0, i) and (i, n)
    std::vector<SmartDigraph::Node> tree(4 * n);
    std::vector<char> made(4 * n, 0);
    std::function<SmartDigraph::Node(ll, ll, ll)> build = [&](ll id, ll lo, ll hi) -> SmartDigraph::Node {
      if (hi - lo == 1) return o[lo];
      tree[id] = g.addNode(); made[id] = 1;
      ll mid = (lo + hi) / 2;
      arc(tree[id], build(2 * id, lo, mid), INF);
      arc(tree[id], build(2 * id + 1, mid, hi), INF);
      return tree[id];
    };
    if (n > 1) build(1, 0, n);
    std::function<void(ll, ll, ll, ll, ll, SmartDigraph::Node)> cover = [&](ll id, ll lo, ll hi, ll a, ll b, SmartDigraph::Node from) {
      if (b <= lo || hi <= a) return;
      if (a <= lo && hi <= b) { arc(from, hi - lo == 1 ? o[lo] : tree[id], INF); return; }
      ll mid = (lo + hi) / 2;
      cover(2 * id, lo, mid, a, b, from);
      cover(2 * id + 1, mid, hi, a, b, from);
    };
    for (ll i = 0; i < n; i++) { if (!R[i] || n < 2) continue; cover(1, 0, n, 0, i, r[i]); cover(1, 0, n, i + 1, n, r[i]); }
  } else if (k > 0) {
    g.reserveArc(2 * n);
    for (ll i = 0; i < n; i++) { if (!R[i]) continue; for (ll j = 0; j < n; j++) if (j != i && O[j]) { pairArcs.push_back(arc(r[i], o[j], k)); pairs.push_back({(int)i, (int)j}); } }
  } else {
    for (size_t e = 0; e < B.size(); e += 3) if (B[e + 2] > 0) { pairArcs.push_back(arc(r[B[e]], o[B[e + 1]], B[e + 2])); pairs.push_back({(int)B[e], (int)B[e + 1]}); }
  }
  Preflow<SmartDigraph, SmartDigraph::ArcMap<ll>> pf(g, cap, s, t);
  pf.run();
  printf("{\"total\":%lld,\"assignments\":[", (ll)pf.flowValue());
  bool first = true;
  for (size_t e = 0; e < pairArcs.size(); e++) { ll fl = pf.flow(pairArcs[e]); if (fl > 0) { printf(first ? "[%d,%d,%lld]" : ",[%d,%d,%lld]", pairs[e].first, pairs[e].second, fl); first = false; } }
  printf("]}\n");
  return 0;
}
