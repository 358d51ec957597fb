/** The portal's pages: server-rendered HTML, one stylesheet, no scripts. */
import { html, type Html } from './html.js';
import type { GrantObject, OfferObject, RequestObject, TenantObject } from './data.js';
import type { VmView } from './model.js';

export const CSS = `
:root{--bg:#f6f7fb;--card:#fff;--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--accent:#2f6fed;--ok:#12805c;--warn:#b54708;--bad:#b42318}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{background:#101828;color:#fff;padding:14px 28px;display:flex;align-items:center;gap:16px}
header h1{font-size:18px;margin:0;font-weight:600}header .who{margin-left:auto;color:#d0d5dd;font-size:14px}
header form{margin:0}main{max-width:1080px;margin:24px auto;padding:0 20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin-bottom:18px;box-shadow:0 1px 2px rgba(16,24,40,.05)}
h2{font-size:16px;margin:0 0 12px}table{border-collapse:collapse;width:100%}td strong{white-space:nowrap}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f4f7;padding:1px 5px;border-radius:4px}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;background:#f2f4f7;color:var(--muted)}
.pill.ok{background:#ecfdf3;color:var(--ok)}.pill.warn{background:#fffaeb;color:var(--warn)}.pill.bad{background:#fef3f2;color:var(--bad)}
button,input[type=submit]{font:inherit;border:0;border-radius:6px;padding:5px 12px;background:var(--accent);color:#fff;cursor:pointer}
button.secondary{background:#eaecf0;color:var(--ink)}select,input[type=password],input[type=text]{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px}
form.inline{display:inline-flex;gap:6px;align-items:center;margin:2px 0}
.error{border-left:4px solid var(--bad)}.notice{border-left:4px solid var(--accent)}.muted{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}.stat{font-size:26px;font-weight:700}
svg text{font:11px system-ui,sans-serif;fill:var(--muted)}
`;

export interface Layout {
  title: string;
  who?: string;
  csrf?: string;
  body: Html;
}

export function page(l: Layout): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${l.title} · Personal Cloud</title>
        <link rel="stylesheet" href="/portal.css" />
      </head>
      <body>
        <header>
          <h1>Personal Cloud · ${l.title}</h1>
          ${
            l.who
              ? html`<span class="who">${l.who}</span>
                  <form method="post" action="/logout">
                    <input type="hidden" name="_csrf" value="${l.csrf ?? ''}" /><button class="secondary">
                      Sign out
                    </button>
                  </form>`
              : ''
          }
        </header>
        <main>${l.body}</main>
      </body>
    </html>`.text;
}

export function message(kind: 'error' | 'notice', title: string, text: string, back?: string): Html {
  return html`<div class="card ${kind}" role="${kind === 'error' ? 'alert' : 'status'}">
    <h2>${title}</h2>
    <p>${text}</p>
    ${back ? html`<p><a href="${back}">Back</a></p>` : ''}
  </div>`;
}

function phasePill(phase: string | undefined): Html {
  const p = phase ?? 'Unknown';
  const cls = ['Running', 'Active', 'Matched', 'True', 'FullyAssigned'].includes(p)
    ? 'ok'
    : ['Pending', 'Provisioning', 'Expired', 'PartiallyAssigned'].includes(p)
      ? 'warn'
      : ['Refused', 'Degraded', 'Lost', 'False', 'PeerAway', 'NoCapacity'].includes(p)
        ? 'bad'
        : '';
  return html`<span class="pill ${cls}">${p}</span>`;
}

export function landing(csrf: string, host: string): Html {
  return html`<div class="card notice">
      <h2>Guests: sign in through your own home</h2>
      <p>
        This portal belongs to <strong>${host}</strong>. If your VMs run here, ask your home for a sign-in
        link (<code>pcloud portal login-link --user you --host ${host}</code>): it is valid for a few minutes
        and once.
      </p>
    </div>
    <div class="card">
      <h2>Owner of ${host}</h2>
      <form method="post" action="/owner/login" class="inline">
        <input type="hidden" name="_csrf" value="${csrf}" />
        <input
          type="password"
          name="token"
          placeholder="owner token"
          autocomplete="current-password"
          aria-label="owner token"
        />
        <button>Sign in</button>
      </form>
    </div>`;
}

export function confirmLogin(
  csrf: string,
  assertion: string,
  user: string,
  home: string,
  host: string,
): Html {
  return html`<div class="card notice">
    <h2>Sign in to ${host}</h2>
    <p>Your home <strong>${home}</strong> vouches that you are <strong>${user}</strong>.</p>
    <form method="post" action="/login">
      <input type="hidden" name="_csrf" value="${csrf}" />
      <input type="hidden" name="assertion" value="${assertion}" />
      <button id="continue">Continue as ${user}@${home}</button>
    </form>
  </div>`;
}

function remaining(expiresAt: string, now: Date): string {
  const s = Math.max(0, Math.round((Date.parse(expiresAt) - now.getTime()) / 1000));
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

export function vmsPage(o: {
  peer: string;
  host: string;
  client: string;
  vms: readonly VmView[];
  grants: readonly GrantObject[];
  csrf: string;
  durations: readonly number[];
  publicAddress?: string;
  now: Date;
  notice?: Html;
}): Html {
  const durations = o.durations.map(
    (s) => html`<option value="${s}">${s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`}</option>`,
  );
  const endpoint = (g: GrantObject): string =>
    g.status?.publicPort !== undefined
      ? `${o.publicAddress ?? g.status.endpoint?.split(':')[0] ?? ''}:${g.status.publicPort}`
      : '';
  return html`${o.notice ?? ''}
    <div class="card">
      <h2>Your VMs at ${o.host}</h2>
      <p class="muted">
        Signed in from <code id="client">${o.client}</code>. Opening a TCP or UDP port forwards it from this
        home's public address to the VM, for your address only, for the time you choose.
      </p>
      ${
        o.vms.length === 0
          ? html`<p id="no-vms">${o.peer} has no VMs at this home.</p>`
          : html`<table id="vms">
              <thead>
                <tr>
                  <th>VM</th>
                  <th>Phase</th>
                  <th>Address</th>
                  <th>Hostname</th>
                  <th>Ports</th>
                </tr>
              </thead>
              <tbody>
                ${o.vms.map(
                  (v) =>
                    html`<tr data-vm="${v.name}">
                      <td>
                        <strong>${v.name}</strong>
                        <div class="muted">${v.request}</div>
                      </td>
                      <td>${phasePill(v.phase)}</td>
                      <td><code>${v.address ?? '–'}</code></td>
                      <td>${v.hostname ? html`<code>${v.hostname}</code>` : '–'}</td>
                      <td>
                        ${v.ports.map((p) =>
                          p.protocol === 'TCP' || p.protocol === 'UDP'
                            ? html`<form
                                method="post"
                                action="/grants"
                                class="inline"
                                data-port="${p.protocol}/${p.port}"
                              >
                                <input type="hidden" name="_csrf" value="${o.csrf}" />
                                <input type="hidden" name="vm" value="${v.name}" />
                                <input type="hidden" name="port" value="${p.port}" />
                                <input type="hidden" name="protocol" value="${p.protocol}" />
                                <span>${p.name} <code>${p.protocol}/${p.port}</code></span>
                                <select name="seconds" aria-label="for how long">
                                  ${durations}
                                </select>
                                <button>Open</button>
                              </form>`
                            : html`<div>
                                ${p.name} <code>${p.protocol}/${p.port}</code>
                                <span class="muted">by hostname</span>
                              </div>`,
                        )}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </div>
    <div class="card">
      <h2>Open ports</h2>
      ${
        o.grants.length === 0
          ? html`<p class="muted" id="no-grants">Nothing is open.</p>`
          : html`<table id="grants">
              <thead>
                <tr>
                  <th>VM</th>
                  <th>Port</th>
                  <th>For</th>
                  <th>Connect to</th>
                  <th>State</th>
                  <th>Closes in</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                ${o.grants.map(
                  (g) =>
                    html`<tr
                      data-grant="${g.metadata?.name ?? ''}"
                      data-port="${g.spec.protocol}/${g.spec.port}"
                    >
                      <td>${g.spec.vm}</td>
                      <td><code>${g.spec.protocol}/${g.spec.port}</code></td>
                      <td><code>${g.spec.clientAddress}</code></td>
                      <td><code class="endpoint">${endpoint(g)}</code></td>
                      <td>
                        ${phasePill(g.status?.phase ?? 'Pending')}
                        ${
                          g.status?.phase === 'Refused'
                            ? html`<div class="muted">
                                ${g.status.conditions?.find((c) => c.type === 'Ready')?.message ?? ''}
                              </div>`
                            : ''
                        }
                      </td>
                      <td>${remaining(g.spec.expiresAt, o.now)}</td>
                      <td>
                        <form method="post" action="/grants/${g.metadata?.name ?? ''}/delete" class="inline">
                          <input type="hidden" name="_csrf" value="${o.csrf}" /><button class="secondary">
                            Close
                          </button>
                        </form>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </div>`;
}

export interface Sample {
  t: number;
  offered: number;
  allocated: number;
  hosted: number;
}

/** A small line chart of units offered, allocated to guests, and VMs hosted over time. */
export function chart(samples: readonly Sample[]): Html {
  const W = 640;
  const H = 180;
  const pad = 28;
  const top = 40; // the legend's row
  if (samples.length === 0) return html`<p class="muted">No samples yet.</p>`;
  const max = Math.max(1, ...samples.flatMap((s) => [s.offered, s.allocated, s.hosted]));
  const t0 = samples[0]!.t;
  const span = Math.max(1, samples[samples.length - 1]!.t - t0);
  const x = (t: number): number => pad + ((t - t0) / span) * (W - 2 * pad);
  const y = (v: number): number => H - pad - (v / max) * (H - pad - top);
  const line = (k: 'offered' | 'allocated' | 'hosted'): string =>
    samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k]).toFixed(1)}`).join(' ');
  const series: [string, 'offered' | 'allocated' | 'hosted', string][] = [
    ['offered', 'offered', '#98a2b3'],
    ['allocated to guests', 'allocated', '#2f6fed'],
    ['VMs hosted', 'hosted', '#12805c'],
  ];
  return html`<svg
    id="units-chart"
    viewBox="0 0 ${W} ${H}"
    width="100%"
    role="img"
    aria-label="units over time"
  >
    <line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#e4e7ec" />
    <line x1="${pad}" y1="${top}" x2="${W - pad}" y2="${top}" stroke="#f2f4f7" />
    <text x="4" y="${top + 4}">${max}</text>
    <text x="4" y="${H - pad + 4}">0</text>
    <text x="${pad}" y="${H - 8}">${new Date(t0).toISOString().slice(11, 16)}</text>
    <text x="${W - pad - 30}" y="${H - 8}">
      ${new Date(samples[samples.length - 1]!.t).toISOString().slice(11, 16)}
    </text>
    ${series.map(
      ([label, k, color], i) =>
        html`<polyline fill="none" stroke="${color}" stroke-width="2.5" points="${line(k)}" />
          <rect x="${pad + i * 170}" y="8" width="10" height="10" fill="${color}" />
          <text x="${pad + 15 + i * 170}" y="17">${label}</text>`,
    )}
  </svg>`;
}

function cond(
  conds: readonly { type: string; status: string; reason: string; message: string }[] | undefined,
  type: string,
): Html {
  const c = conds?.find((x) => x.type === type);
  if (!c) return html`–`;
  const cls = c.status === 'True' ? 'ok' : c.status === 'False' ? 'bad' : 'warn';
  return html`<span class="pill ${cls}" title="${c.message}">${c.reason}</span>`;
}

export function ownerPage(o: {
  peer: string;
  offers: readonly OfferObject[];
  requests: readonly RequestObject[];
  tenants: readonly { tenant: TenantObject; vms: readonly VmView[]; grants: readonly GrantObject[] }[];
  samples: readonly Sample[];
  loginKey?: string;
  now: Date;
}): Html {
  const offered = o.offers.reduce((n, x) => n + x.spec.units, 0);
  const allocated = o.offers.reduce((n, x) => n + (x.status?.allocatedUnits ?? 0), 0);
  const requested = o.requests.reduce((n, x) => n + x.spec.units, 0);
  const assigned = o.requests.reduce((n, x) => n + (x.status?.assignedUnits ?? 0), 0);
  const hosted = o.tenants.reduce((n, t) => n + t.vms.length, 0);
  const liveGrants = o.tenants.reduce((n, t) => n + t.grants.length, 0);
  const away = o.offers.filter((x) =>
    x.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'PeerAway'),
  );
  const unheard = [...o.offers, ...o.requests].filter(
    (x) => !x.status?.conditions?.some((c) => c.type === 'Ready'),
  );
  const rejected = o.requests.filter((r) =>
    r.status?.conditions?.some(
      (c) => (c.type === 'HostsAccepted' || c.type === 'HostReports') && c.status === 'False',
    ),
  );
  return html`<div class="grid">
      <div class="card">
        <div class="muted">Offered</div>
        <div class="stat" id="stat-offered">${offered}</div>
        <div class="muted">${allocated} allocated to guests</div>
      </div>
      <div class="card">
        <div class="muted">Requested</div>
        <div class="stat" id="stat-requested">${requested}</div>
        <div class="muted">${assigned} placed elsewhere</div>
      </div>
      <div class="card">
        <div class="muted">Hosting</div>
        <div class="stat" id="stat-hosted">${hosted}</div>
        <div class="muted">VMs of ${o.tenants.length} guests</div>
      </div>
      <div class="card">
        <div class="muted">Open grants</div>
        <div class="stat" id="stat-grants">${liveGrants}</div>
        <div class="muted">ports forwarded now</div>
      </div>
    </div>
    <div class="card">
      <h2>Federation</h2>
      <p>
        ${
          o.offers.length === 0 && o.requests.length === 0
            ? html`<span class="pill" id="federation-health">idle</span> no Offers or Requests at this home`
            : away.length > 0
              ? html`<span class="pill bad" id="federation-health">away</span> the matchmaker counts this home
                  as away (no heartbeat within its grace): ${away.map((x) => x.metadata?.name).join(', ')}`
              : unheard.length > 0
                ? html`<span class="pill warn" id="federation-health">not heard back</span> no status from the
                    matchmaker yet on ${unheard.map((x) => x.metadata?.name).join(', ')} (not joined, or the
                    matchmaker is unreachable)`
                : html`<span class="pill ok" id="federation-health">present</span> the matchmaker sees this
                    home and has matched its Offers and Requests`
        }
        ${
          rejected.length > 0
            ? html` · <span class="pill warn">attention</span> host refusals or rejected reports on
                ${rejected.map((r) => r.metadata?.name).join(', ')}`
            : ''
        }
      </p>
      <p class="muted">
        Portal login key of this home:
        ${o.loginKey ? html`<code>${o.loginKey}</code>` : 'none (run pcloud portal keygen)'}
      </p>
      ${chart(o.samples)}
    </div>
    <div class="card">
      <h2>Offers</h2>
      <table id="offers">
        <thead>
          <tr>
            <th>Offer</th>
            <th>Units</th>
            <th>Allocated</th>
            <th>Unit</th>
            <th>Bandwidth</th>
            <th>Ready</th>
          </tr>
        </thead>
        <tbody>
          ${
            o.offers.length === 0
              ? html`<tr>
                  <td colspan="6" class="muted">No Offers: this home hosts nothing for others.</td>
                </tr>`
              : ''
          }
          ${o.offers.map(
            (x) =>
              html`<tr>
                <td>${x.metadata?.namespace}/${x.metadata?.name}</td>
                <td>${x.spec.units}</td>
                <td>${x.status?.allocatedUnits ?? 0}</td>
                <td>${String(x.spec.unit?.cpu ?? '')} CPU · ${String(x.spec.unit?.memory ?? '')}</td>
                <td>${x.spec.bandwidth?.ingress ?? '–'} / ${x.spec.bandwidth?.egress ?? '–'}</td>
                <td>${cond(x.status?.conditions, 'Ready')}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    <div class="card">
      <h2>Requests: where this home's VMs run</h2>
      <table id="requests">
        <thead>
          <tr>
            <th>Request</th>
            <th>Units</th>
            <th>Placed</th>
            <th>Where</th>
            <th>Login key</th>
            <th>Ready</th>
          </tr>
        </thead>
        <tbody>
          ${
            o.requests.length === 0
              ? html`<tr>
                  <td colspan="6" class="muted">No Requests: this home asks for nothing elsewhere.</td>
                </tr>`
              : ''
          }
          ${o.requests.map(
            (r) =>
              html`<tr>
                <td>${r.metadata?.namespace}/${r.metadata?.name}</td>
                <td>${r.spec.units}</td>
                <td>${r.status?.assignedUnits ?? 0}</td>
                <td>
                  ${(r.status?.placements ?? []).map(
                    (p) =>
                      html`<div>
                        <strong>${p.peer}</strong> × ${p.units}:
                        ${(p.vms ?? []).map(
                          (v) =>
                            html` <span
                              >${v.name} ${phasePill(v.phase)}
                              ${v.hostname ? html`<code>${v.hostname}</code>` : ''}</span
                            >`,
                        )}
                      </div>`,
                  )}
                </td>
                <td>
                  ${r.spec.loginKey ? (r.spec.loginKey === o.loginKey ? html`<span class="pill ok">this home's</span>` : html`<span class="pill warn">other key</span>`) : html`<span class="pill">none</span>`}
                </td>
                <td>${cond(r.status?.conditions, 'Ready')}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    <div class="card">
      <h2>Guests hosted here</h2>
      <table id="tenants">
        <thead>
          <tr>
            <th>Guest</th>
            <th>Units</th>
            <th>Bandwidth (in / out)</th>
            <th>VMs</th>
            <th>Open grants</th>
            <th>Ready</th>
          </tr>
        </thead>
        <tbody>
          ${
            o.tenants.length === 0
              ? html`<tr>
                  <td colspan="6" class="muted">No guests yet.</td>
                </tr>`
              : ''
          }
          ${o.tenants.map(
            (t) =>
              html`<tr data-tenant="${t.tenant.spec.peer}">
                <td>
                  <strong>${t.tenant.spec.peer}</strong>
                  <div class="muted">${t.tenant.status?.namespace ?? ''}</div>
                </td>
                <td>${t.tenant.spec.units}</td>
                <td>
                  ${t.tenant.spec.bandwidth?.ingress ?? '–'} / ${t.tenant.spec.bandwidth?.egress ?? '–'}
                </td>
                <td>
                  ${t.vms.map((v) => html`<div>${v.name} ${phasePill(v.phase)} <code>${v.address ?? ''}</code></div>`)}
                </td>
                <td>
                  ${t.grants.map(
                    (g) =>
                      html`<div>
                        <code>${g.spec.vm} ${g.spec.protocol}/${g.spec.port}</code> ←
                        <code>${g.spec.clientAddress}</code> ${phasePill(g.status?.phase ?? 'Pending')}
                        ${remaining(g.spec.expiresAt, o.now)}
                      </div>`,
                  )}
                </td>
                <td>${cond(t.tenant.status?.conditions, 'Ready')}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>`;
}
